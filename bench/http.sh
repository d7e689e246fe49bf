#!/usr/bin/env bash
# HTTP benchmark of `osprey serve` with wrk on loopback (results in BENCHMARKS.md).
#
#   bench/http.sh [USERS] [ITEMS] [RATINGS] [DIM]      (defaults 100000 10000 1000000 50)
#
# Builds release, generates and trains a model (once per size, cached in .bench-data/), starts the
# server, and runs wrk -t1 -c32 -d10s against predict (random users and items), durable observe,
# and whole-catalogue topk, twice each, alternating. Prints wrk's summary and latency percentiles
# and the server's RSS. Installs `wrk` (Debian) if missing. Talks only to 127.0.0.1; stops the
# server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${1:-100000}; ITEMS=${2:-10000}; RATINGS=${3:-1000000}; DIM=${4:-50}
PORT=${PORT:-18181}
require_wrk
build_release
prepare_model "$USERS" "$ITEMS" "$RATINGS" "$DIM"
# Snapshots every 100,000 observations (default 500,000), so the observe runs include their cost.
# The prediction cache is off (CACHE=N to turn it on): wrk cycles 20,000 prebuilt requests, so
# most topk answers would be cache hits; bench/cache.sh measures the cache.
start_server "$DATA" "$PORT" --snapshot-observations "${SNAPSHOT:-100000}" --prediction-cache "${CACHE:-0}"
curl -sf "http://127.0.0.1:$PORT/v1/models/bench" >/dev/null || { echo "model bench is not being served"; exit 1; }
echo "server RSS after load: $(awk '/VmRSS/{print $2" "$3}' /proc/$PID/status) for $USERS users, $ITEMS items, d=$DIM"

LUA=$(mktemp -d)
write_endpoint_requests "$LUA" "$USERS" "$ITEMS"
echo "== warm-up (predict, 3 s, not reported)"
wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" >/dev/null
for round in 1 2; do
  for ep in predict observe topk; do
    echo "== $ep (round $round)"
    wrk -t1 -c32 -d10s --latency -s "$LUA/$ep.lua" "http://127.0.0.1:$PORT" | grep -E "Requests/sec|Non-2xx|Socket errors|^ +(50|90|99)%"
  done
done
echo "server RSS after the runs: $(awk '/VmRSS/{print $2" "$3}' /proc/$PID/status)"
echo "observations committed: $(curl -s http://127.0.0.1:$PORT/metrics | grep -E '^osprey_(observations_total|group_commits_total)')"
rm -rf "$LUA"
