#!/usr/bin/env bash
# The prediction cache over HTTP (docs/operations.md, "Caches"): a Zipf workload (exponent 1.0) of predict and of
# repeated whole-catalogue topk calls against two servers on the same model, one with the cache
# (default size and policy, single-item scores cached too: --cache-scores) and one without
# (--prediction-cache 0), alternating, twice each.
#
#   bench/cache.sh [USERS] [ITEMS] [RATINGS] [DIM]      (defaults 100000 10000 1000000 50)
#   CACHE=feature bench/cache.sh ...
#
# With CACHE=feature it measures the feature cache instead: one server with --feature-cache
# 10000 (10 % of the items, FEATURE_CACHE to change), one without, neither with a prediction
# cache; the endpoints are predict and topk over a candidate list of 50 Zipf items (300,000 of
# these requests per trace; the whole-catalogue scan reads its own table, not the feature cache).
#
# Users are drawn Zipf(1.0) over all users and, for predict, items Zipf(1.0) over all items, in
# 1,000,000 requests prebuilt by wrk's Lua init (more than a 10 s run sends, so the trace does not
# repeat), from a new seed for every round and endpoint (a later run does not replay an earlier
# one; the two servers get the same trace). Prints req/s, p50/p99 and the cache's hit ratio from
# /metrics. Needs wrk; reuses bench/http.sh's cached model in .bench-data/. Talks only to
# 127.0.0.1; stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${1:-100000}; ITEMS=${2:-10000}; RATINGS=${3:-1000000}; DIM=${4:-50}
DURATION=${DURATION:-10}
CACHED_PORT=${CACHED_PORT:-18191}; PLAIN_PORT=${PLAIN_PORT:-18192}
require_wrk
build_release
DATA=.bench-data/u${USERS}-i${ITEMS}-r${RATINGS}-d${DIM}
if [ ! -f "$DATA/osprey.sqlite" ]; then echo "no model in $DATA: run bench/http.sh $USERS $ITEMS $RATINGS $DIM first"; exit 1; fi
CACHE=${CACHE:-prediction}
# Neither server is sent observations.
case $CACHE in
  prediction) start_server "$DATA" "$CACHED_PORT" --cache-scores ;;
  feature) start_server "$DATA" "$CACHED_PORT" --prediction-cache 0 --feature-cache "${FEATURE_CACHE:-10000}" ;;
  *) echo "CACHE must be prediction or feature"; exit 1 ;;
esac
CACHED=$PID
# The second server serves a copy: a data directory is one process's (its lock).
PLAIN_DATA=.bench-data/cache-run/plain-data
rm -rf "$PLAIN_DATA"; mkdir -p .bench-data/cache-run
cp -a "$DATA" "$PLAIN_DATA"
start_server "$PLAIN_DATA" "$PLAIN_PORT" --prediction-cache 0
PLAIN=$PID
for port in $CACHED_PORT $PLAIN_PORT; do
  curl -sf "http://127.0.0.1:$port/v1/models/bench" >/dev/null || { echo "server on $port is not serving model bench"; exit 1; }
done
LUA=.bench-data/cache-run/lua
rm -rf "$LUA"; mkdir -p "$LUA"

zipf_requests "$LUA/predict.lua" \
  'wrk.format("GET", "/v1/models/bench/users/u" .. zu() .. "/predict?item=i" .. zi())'
if [ "$CACHE" = feature ]; then
  zipf_requests "$LUA/topk.lua" \
    'wrk.format("POST", "/v1/models/bench/users/u" .. zu() .. "/topk", {["Content-Type"]="application/json"}, candidates(zi))' 300000
else
  zipf_requests "$LUA/topk.lua" \
    'wrk.format("POST", "/v1/models/bench/users/u" .. zu() .. "/topk", {["Content-Type"]="application/json"}, "{\"k\":10}")'
fi

counter() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="osprey_${CACHE}_cache_$2" '$1 ~ "^"m"\\{" {print $2}'; }
echo "== warm-up of both servers (predict, 3 s each, not reported)"
for port in $CACHED_PORT $PLAIN_PORT; do wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$port" >/dev/null; done
seed=0
for round in 1 2; do
  for ep in predict topk; do
    seed=$((seed + 1))
    for which in cached plain; do
      port=$([ $which = cached ] && echo $CACHED_PORT || echo $PLAIN_PORT)
      h0=$(counter $port hits_total); m0=$(counter $port misses_total)
      echo "== $ep, $which (round $round)"
      wrk -t1 -c32 -d${DURATION}s --latency -s "$LUA/$ep.lua" "http://127.0.0.1:$port" -- $seed | grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|99)%"
      if [ $which = cached ]; then
        h=$(( $(counter $port hits_total) - h0 )); m=$(( $(counter $port misses_total) - m0 ))
        echo "   cache: $h hits, $m misses, hit ratio $(awk -v h=$h -v m=$m 'BEGIN { printf "%.1f %%", (h + m) ? 100 * h / (h + m) : 0 }')"
      fi
    done
  done
done
echo "RSS: cached $(awk '/VmRSS/{print $2" "$3}' /proc/$CACHED/status), plain $(awk '/VmRSS/{print $2" "$3}' /proc/$PLAIN/status)"
echo "cache entries: $(counter $CACHED_PORT entries), evictions: $(counter $CACHED_PORT evictions_total)"
