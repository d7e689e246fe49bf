#!/usr/bin/env bash
# Durable observe while snapshots run (BENCHMARKS.md): the same release binary on the same model,
# `osprey serve --snapshot-observations 100000` (at ~20k observations/s a snapshot of the ~60k
# users changed since the last one is always under way) against snapshots that never trigger
# (100,000,000), alternating, ROUNDS rounds; in each, a 10 s unreported warm-up of observes, then
# two measured periods of wrk -t1 -c32 -d${DURATION}s --latency. Prediction cache off.
#
#   bench/snapshot-load.sh            DURATION=10 ROUNDS=2
#   EVERY=100000 OSPREY_BIN=/path/to/osprey bench/snapshot-load.sh   (one setting, another build)
#
# The model is bench/http.sh's (100,000 users, 10,000 items, d=50, cached in .bench-data/).
# Talks only to 127.0.0.1; stops the servers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
require_wrk
DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-2}; PORT=${PORT:-18195}
build_release
prepare_model 100000 10000 1000000 50
LUA=.bench-data/snapshot-load-run
mkdir -p "$LUA"
write_endpoint_requests "$LUA" 100000 10000

echo "| snapshot every | round | period | requests/s | p50 | p99 | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  for every in ${EVERY:-100000 100000000}; do
    start_server "$DATA" "$PORT" --prediction-cache 0 --snapshot-observations "$every"
    wrk -t1 -c32 -d10s -s "$LUA/observe.lua" "http://127.0.0.1:$PORT" >/dev/null
    for period in 1 2; do
      wrk -t1 -c32 -d"${DURATION}s" --latency -s "$LUA/observe.lua" "http://127.0.0.1:$PORT" > "$LUA/out"
      read -r rps p50 p99 errors < <(wrk_summary "$LUA/out")
      echo "| $every observations | $round | $period | $rps | $p50 ms | $p99 ms | $errors |"
    done
    stop_started
  done
done
