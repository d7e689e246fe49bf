#!/usr/bin/env bash
# The computed feature cache (Velox §5; docs/operations.md, "Items and attributes"): catalogue
# items scored from their attributes, with the cache of their computed vectors at its default
# size, at a tenth of the items, and off (`--computed-feature-cache 0`).
#
#   bench/computed-features.sh          (DURATION=10, CAPACITIES="10000 1000 0")
#
# Model: 100,000 users, 10,000 trained items with attributes (`osprey generate --items-out
# --attribute-share 0.6`, `osprey train --items`; d = 50), cached in .bench-data/; then 10,000
# new items written with attributes (`POST …/items`), never trained. For each capacity, one
# server at a time: wrk predict of those new items (items drawn Zipf(1.0), users uniform), then
# whole-catalogue topk (10,000 trained rows scanned, 10,000 computed ones scored through the
# cache), DURATION seconds each. Prints requests/s, p50/p99 and the cache's hit ratio (from
# /metrics). Needs wrk; talks only to 127.0.0.1; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-10}
CAPACITIES=${CAPACITIES:-"10000 1000 0"}
PORT=${PORT:-18197}
require_wrk
build_release
DATA=.bench-data/attributes-u100000-i10000-r1000000-d50
if [ ! -f "$DATA/osprey.sqlite" ]; then
  mkdir -p "$DATA"
  $BIN generate --users 100000 --items 10000 --ratings 1000000 --dim 10 --noise 0.5 --seed 1 \
    --items-out "$DATA/items.csv" --attribute-share 0.6 --out "$DATA/ratings.csv"
  $BIN train --data-dir "$DATA" --model bench --ratings "$DATA/ratings.csv" --items "$DATA/items.csv" \
    --dim 50 --lambda 0.1 --scale-lambda --iterations 5 2>&1 | grep -E "attribute map|stored"
  # 10,000 new items: the attributes of trained item i, renamed n<i>, in requests of 1,000.
  start_server "$DATA" "$PORT"
  python3 - "$DATA/items.csv" "$PORT" <<'PYEOF'
import csv, json, sys, urllib.request
rows = list(csv.DictReader(open(sys.argv[1])))
# As ItemsReader reads a column: multi-valued if any cell has a `|`, numeric if every cell is a number.
def number(text):
    try: return float(text)
    except ValueError: return None
columns = [c for c in rows[0] if c != "item"]
lists = {c for c in columns if any("|" in r[c] for r in rows)}
numbers = {c for c in columns if c not in lists and all(number(r[c]) is not None for r in rows if r[c] != "")}
def value(column, text):
    if column in lists: return text.split("|")
    return number(text) if column in numbers else text
items = [{"id": "n" + r["item"][1:], "attributes": {k: value(k, v) for k, v in r.items() if k != "item" and v != ""}} for r in rows]
for i in range(0, len(items), 1000):
    req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/v1/models/bench/items", data=json.dumps({"items": items[i:i + 1000]}).encode(),
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
print(f"wrote {len(items)} new items")
PYEOF
  kill "$PID"; wait "$PID" 2>/dev/null || true; untrack_pid "$PID"
fi
LUA=.bench-data/computed-run/lua
rm -rf "$LUA"; mkdir -p "$LUA"
USERS=100000; ITEMS=10000
zipf_requests "$LUA/predict.lua" \
  'wrk.format("GET", "/v1/models/bench/users/u" .. math.random(0, 99999) .. "/predict?item=n" .. zi())' 200000
write_requests "$LUA/topk.lua" \
  'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, 99999) .. "/topk", {["Content-Type"]="application/json"}, "{\"k\":10}")'
counter() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="osprey_computed_feature_cache_$1" '$1 ~ "^"m"\\{" {s += $2} END {print s + 0}'; }
printf "| computed feature cache | endpoint | requests/s | p50 | p99 | hit ratio |\n|---|---|---:|---:|---:|---:|\n" > "$LUA/../table"
for capacity in $CAPACITIES; do
  start_server "$DATA" "$PORT" --computed-feature-cache "$capacity" --prediction-cache 0
  SERVER=$PID
  wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" > /dev/null   # warm-up, not reported
  for ep in predict topk; do
    h0=$(counter hits_total); m0=$(counter misses_total)
    wrk -t1 -c32 -d${DURATION}s --latency -s "$LUA/$ep.lua" "http://127.0.0.1:$PORT" > "$LUA/../out"
    h=$(( $(counter hits_total) - h0 )); m=$(( $(counter misses_total) - m0 ))
    read -r rps p50 p99 errors <<< "$(wrk_summary "$LUA/../out")"
    [ "$errors" = 0 ] || echo "errors: $errors"
    ratio=$(awk -v h=$h -v m=$m 'BEGIN { if (h + m) printf "%.1f %%", 100 * h / (h + m); else printf "–" }')
    echo "| $capacity | $ep | $rps | $p50 ms | $p99 ms | $ratio |" | tee -a "$LUA/../table"
  done
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  untrack_pid "$SERVER"
done
echo
echo "== $(nproc) cores, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), wrk -t1 -c32, ${DURATION} s each, prediction cache off, $(date +%F)"
cat "$LUA/../table"
