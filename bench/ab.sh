#!/usr/bin/env bash
# Two builds of `osprey serve` side by side (BENCHMARKS.md): the same model, the same requests,
# the builds alternating within each round, so a noisy period hits both.
#
#   bench/ab.sh BASE_BINARY NEW_BINARY      DURATION=10 ROUNDS=3 ENDPOINTS="predict topk observe"
#
# Copy a build aside (cp .build/release/osprey /tmp/osprey-base) before changing the code, build
# again, and pass both. Each start is warmed with 3 s of predict, then each endpoint is measured with
# wrk -t1 -c32 -d${DURATION}s --latency (random users and items; prediction cache off, decision
# log on, as in bench/compare.sh). The model is bench/http.sh's (100,000 users, 10,000 items, d=50,
# cached in .bench-data/). Prints a Markdown table, then each build's median requests/s and p99 per
# endpoint. Talks only to 127.0.0.1; stops the servers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
[ $# -eq 2 ] && [ -x "$1" ] && [ -x "$2" ] || { echo "usage: bench/ab.sh BASE_BINARY NEW_BINARY"; exit 2; }
BUILDS=("$1" "$2")
DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; PORT=${PORT:-18195}
ENDPOINTS=${ENDPOINTS:-predict topk observe}
require_wrk
BIN=$1
prepare_model 100000 10000 1000000 50
OUT=.bench-data/ab-run
mkdir -p "$OUT"
write_endpoint_requests "$OUT" 100000 10000
: > "$OUT/results"

echo "| build | endpoint | round | requests/s | p50 | p99 | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  for b in 0 1; do
    # The order of the two builds flips every round.
    which=$(( (b + round + 1) % 2 ))
    BIN=${BUILDS[$which]}
    name=$([ "$which" = 0 ] && echo base || echo new)
    start_server "$DATA" "$PORT" --prediction-cache 0
    wrk -t1 -c32 -d3s -s "$OUT/predict.lua" "http://127.0.0.1:$PORT" >/dev/null
    for endpoint in $ENDPOINTS; do
      wrk -t1 -c32 -d"${DURATION}s" --latency -s "$OUT/$endpoint.lua" "http://127.0.0.1:$PORT" > "$OUT/out"
      read -r rps p50 p99 errors < <(wrk_summary "$OUT/out")
      echo "| $name | $endpoint | $round | $rps | $p50 ms | $p99 ms | $errors |"
      echo "$name $endpoint $rps $p99" >> "$OUT/results"
    done
    stop_started
  done
done
echo
echo "| build | endpoint | median requests/s | median p99 |"
echo "|---|---|---:|---:|"
median() { sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); print (NR % 2 ? v[m] : (v[m] + v[m + 1]) / 2) }'; }
for endpoint in $ENDPOINTS; do
  for name in base new; do
    rps=$(awk -v n="$name" -v e="$endpoint" '$1 == n && $2 == e { print $3 }' "$OUT/results" | median)
    p99=$(awk -v n="$name" -v e="$endpoint" '$1 == n && $2 == e { print $4 }' "$OUT/results" | median)
    echo "| $name | $endpoint | $rps | $p99 ms |"
  done
done
