#!/usr/bin/env bash
# Tiered item state (docs/operations.md, "Items learn online"): durable observes with items
# learning online, every item's ridge state in memory (`--hot-items all`) against a bound on the
# hot items, which sends the least recently learned cold after each snapshot and reads a cold
# item's state back from the snapshot database when it next learns.
#
#   bench/item-tiering.sh                  (HOT="all 1000", DURATION=60, ITEMS=10000)
#   ITEMS=100000 HOT="all 10000" bench/item-tiering.sh    (a long-tail catalogue)
#
# On bench/http.sh's model (100,000 users, 10,000 items, d = 50; with ITEMS, a model of that many
# items trained the same way on 1,000,000 ratings), each setting on a fresh copy
# (.bench-data/item-tiering-run): `serve --item-updates on --hot-items H --snapshot-observations
# SNAPSHOT` (50,000), a start (the first computes and stores the items' states), then wrk -c8
# durable observes for DURATION seconds, users uniform and items Zipf(1.0) (a few items take
# most observations, as in a catalogue), then a restart on the same data. Prints per setting:
# observe requests/s and p99, the item states held and cold after the run (/metrics, as of the
# last snapshot), RSS after the run, and the restart's time to /healthz and RSS right after it.
# Needs wrk; talks only to 127.0.0.1; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-60}; HOT=${HOT:-"all 1000"}; SNAPSHOT=${SNAPSHOT:-50000}
PORT=${PORT:-18196}
USERS=100000; ITEMS=${ITEMS:-10000}
require_wrk
build_release
prepare_model $USERS $ITEMS 1000000 50
RUN=.bench-data/item-tiering-run
mkdir -p "$RUN"
zipf_requests "$RUN/observe.lua" \
  'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, 99999) .. "/observe", {["Content-Type"]="application/json"}, "{\"item\":\"i" .. zi() .. "\",\"label\":" .. math.random(1, 5) .. "}")' 200000

gauge() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"\\{" {s += $2} END {print s + 0}'; }
printf "| --hot-items | observe req/s | observe p99 | items hot / cold after | RSS after | restart to /healthz | RSS after restart |\n|---|---:|---:|---:|---:|---:|---:|\n" > "$RUN/table"
for hot in $HOT; do
  fresh_copy "$RUN/data"
  options=(--item-updates on --hot-items "$hot" --snapshot-observations "$SNAPSHOT")
  start_server "$RUN/data" "$PORT" "${options[@]}"
  wrk -t1 -c8 -d${DURATION}s --latency -s "$RUN/observe.lua" "http://127.0.0.1:$PORT" > "$RUN/observe.out"
  sleep 2   # a snapshot under way finishes
  read -r rps _ p99 errors <<< "$(wrk_summary "$RUN/observe.out")"
  [ "$errors" = 0 ] || echo "errors: $errors"
  held="$(gauge osprey_items_hot) / $(gauge osprey_items_cold)"
  rss=$(( $(rss_kib $PID) / 1024 ))
  kill "$PID"; wait "$PID" 2>/dev/null || true
  untrack_pid "$PID"
  started=$(date +%s.%N)
  start_server "$RUN/data" "$PORT" "${options[@]}"
  took=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  restarted=$(( $(rss_kib $PID) / 1024 ))
  kill "$PID"; wait "$PID" 2>/dev/null || true
  untrack_pid "$PID"
  echo "| $hot | $rps | $p99 ms | $held | $rss MiB | $took s | $restarted MiB |" | tee -a "$RUN/table"
done
echo
echo "== $(nproc) cores, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), $USERS users and $ITEMS items, wrk -c8 durable observes (items Zipf 1.0) for ${DURATION} s, a snapshot every $SNAPSHOT observations, $(date +%F)"
cat "$RUN/table"
