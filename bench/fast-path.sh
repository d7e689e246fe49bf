#!/usr/bin/env bash
# The event-loop fast path against the router (BENCHMARKS.md): the same release binary on the
# same model, `osprey serve` with and without --no-fast-path, predict, whole-catalogue topk and
# durable observe with wrk -t1 -c32 -d${DURATION}s --latency, alternating, ROUNDS rounds. Prediction cache off
# (as in bench/compare.sh), decision log on (the default).
#
#   bench/fast-path.sh            DURATION=10 ROUNDS=2
#
# The model is bench/http.sh's (100,000 users, 10,000 items, d=50, cached in .bench-data/).
# Talks only to 127.0.0.1; stops the servers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
require_wrk
DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-2}; PORT=${PORT:-18191}
build_release
prepare_model 100000 10000 1000000 50
LUA=.bench-data/fast-path-run
mkdir -p "$LUA"
write_endpoint_requests "$LUA" 100000 10000

echo "| mode | endpoint | round | requests/s | p50 | p99 | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  for mode in fast-path no-fast-path; do
    start_server "$DATA" "$PORT" --prediction-cache 0 --"$mode"
    wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" >/dev/null
    for endpoint in predict topk observe; do
      wrk -t1 -c32 -d"${DURATION}s" --latency -s "$LUA/$endpoint.lua" "http://127.0.0.1:$PORT" > "$LUA/out"
      read -r rps p50 p99 errors < <(wrk_summary "$LUA/out")
      echo "| $mode | $endpoint | $round | $rps | $p50 ms | $p99 ms | $errors |"
    done
    stop_started
  done
done
