#!/usr/bin/env bash
# Items learning online: the publication interval against cached answers (docs/operations.md,
# "Items learn online"). Each publication of the items' rows invalidates the model's cached
# answers, so the interval trades fresher item rows against the prediction cache's hit ratio
# and the topk rate it buys.
#
#   bench/item-publish.sh                 (INTERVALS="100 1000 10000", DURATION=10)
#
# On bench/http.sh's model (100,000 users, 10,000 items, d = 50; a copy in
# .bench-data/item-publish-run/, made once), for item updates off and then on at each interval
# (`--item-publish-ms`), one server at a time with the default prediction cache: wrk sends
# whole-catalogue topk calls for users drawn Zipf(1.0) (-c24) while a second wrk sends durable
# observes of uniformly random users and items (-c8), both for DURATION seconds. Prints topk and
# observe requests/s and p99, and the cache's hit ratio over the run (from /metrics). Needs wrk;
# talks only to 127.0.0.1; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-10}
INTERVALS=${INTERVALS:-"100 1000 10000"}
PORT=${PORT:-18195}
require_wrk
build_release
prepare_model 100000 10000 1000000 50
RUN=.bench-data/item-publish-run
if [ ! -f "$RUN/data/osprey.sqlite" ]; then
  rm -rf "$RUN"; mkdir -p "$RUN"
  cp -a "$DATA" "$RUN/data"
fi
LUA=$RUN/lua
rm -rf "$LUA"; mkdir -p "$LUA"
USERS=100000; ITEMS=10000
zipf_requests "$LUA/topk.lua" \
  'wrk.format("POST", "/v1/models/bench/users/u" .. zu() .. "/topk", {["Content-Type"]="application/json"}, "{\"k\":10}")' 200000
write_requests "$LUA/observe.lua" \
  'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, 99999) .. "/observe", {["Content-Type"]="application/json"}, "{\"item\":\"i" .. math.random(0, 9999) .. "\",\"label\":" .. math.random(1, 5) .. "}")'

counter() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="osprey_prediction_cache_$1" '$1 ~ "^"m"\\{" {s += $2} END {print s + 0}'; }
printf "| item updates | publish interval | topk req/s | topk p99 | observe req/s | observe p99 | cache hit ratio |\n|---|---:|---:|---:|---:|---:|---:|\n" > "$RUN/table"
for setting in off $INTERVALS; do
  if [ "$setting" = off ]; then
    start_server "$RUN/data" "$PORT" --item-updates off
  else
    start_server "$RUN/data" "$PORT" --item-updates on --item-publish-ms "$setting"
  fi
  SERVER=$PID
  wrk -t1 -c24 -d3s -s "$LUA/topk.lua" "http://127.0.0.1:$PORT" > /dev/null   # warm-up, not reported
  h0=$(counter hits_total); m0=$(counter misses_total)
  wrk -t1 -c8 -d${DURATION}s --latency -s "$LUA/observe.lua" "http://127.0.0.1:$PORT" > "$RUN/observe.out" &
  OBSERVER=$!
  track_pid $OBSERVER
  wrk -t1 -c24 -d${DURATION}s --latency -s "$LUA/topk.lua" "http://127.0.0.1:$PORT" > "$RUN/topk.out"
  wait $OBSERVER
  untrack_pid $OBSERVER
  h=$(( $(counter hits_total) - h0 )); m=$(( $(counter misses_total) - m0 ))
  read -r trps _ tp99 terr <<< "$(wrk_summary "$RUN/topk.out")"
  read -r orps _ op99 oerr <<< "$(wrk_summary "$RUN/observe.out")"
  [ "$terr" = 0 ] && [ "$oerr" = 0 ] || echo "errors: topk $terr, observe $oerr"
  ratio=$(awk -v h=$h -v m=$m 'BEGIN { printf "%.1f %%", (h + m) ? 100 * h / (h + m) : 0 }')
  if [ "$setting" = off ]; then label="off | –"; else label="on | ${setting} ms"; fi
  echo "| $label | $trps | $tp99 ms | $orps | $op99 ms | $ratio |" | tee -a "$RUN/table"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  untrack_pid "$SERVER"
done
echo
echo "== $(nproc) cores, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'), wrk topk -c24 + observe -c8, ${DURATION} s each, $(date +%F)"
cat "$RUN/table"
