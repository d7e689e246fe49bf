#!/usr/bin/env bash
# Durable observes while snapshots run: what a snapshot costs them, and whether the tail is the
# disk or the learning lock. Results in BENCHMARKS.md.
#
#   bench/snapshot-cut.sh                                   (item updates on: snapshots at one cut)
#   SERVE_OPTIONS="--item-updates off" bench/snapshot-cut.sh
#   OSPREY_BIN=/path/to/osprey bench/snapshot-cut.sh        (another build)
#
# Serves a fresh copy of bench/retrain-swap.sh's model (100,000 users, 10,000 items, 1,000,000
# ratings, d = 50; trained there once and cached in .bench-data/) with a snapshot every SNAPSHOT
# (150000) observations, and runs wrk -t1 -c32 in SLICES (14) 5-second slices of durable observes
# (200,000 prebuilt requests over random users, items among the 1,000 most popular). Each slice
# prints requests/s, p99, its log commits and learning steps over 25 ms (from /metrics:
# `osprey_log_commit_duration_seconds`, `osprey_learning_duration_seconds`) and the server's RSS
# at its end. Then the server's
# snapshot log lines: `snapshot cut` (how long the cut paused learning; item updates on) and
# `snapshot saved`. Talks only to 127.0.0.1; stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
PORT=${PORT:-18192}; SLICES=${SLICES:-14}; SNAPSHOT=${SNAPSHOT:-150000}
require_wrk
build_release
DATA=.bench-data/swap-u100000-i10000-r1000000-d50
[ -f "$DATA/osprey.sqlite" ] || { echo "no model in $DATA: run LOAD=observe bench/retrain-swap.sh 100000 10000 1000000 50 once"; exit 1; }
RUN=$(mktemp -d)
cp "$DATA"/*.sqlite "$RUN/"
LOG_LEVEL=info start_server "$RUN" "$PORT" --snapshot-observations "$SNAPSHOT" ${SERVE_OPTIONS:---item-updates on} 2> "$RUN/server.log"
cleanup() { stop_started; rm -rf "$RUN"; }
trap cleanup EXIT
write_requests "$RUN/load.lua" \
  'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, 100000 - 1) .. "/observe", {["Content-Type"]="application/json"}, "{\"item\":\"i" .. math.random(0, 999) .. "\",\"label\":" .. math.random(1, 5) .. "}")' 200000
# slow: log commits and learning steps over 25 ms so far.
slow() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^osprey_log_commit_duration_seconds_count/ { c += $NF }
    /^osprey_log_commit_duration_seconds_bucket\{le="0.025"\}/ { c -= $NF }
    /^osprey_learning_duration_seconds_count/ { l += $NF }
    /^osprey_learning_duration_seconds_bucket\{le="0.025"\}/ { l -= $NF }
    END { printf "%d %d\n", c, l }'
}
for i in $(seq 1 "$SLICES"); do
  read -r c0 l0 < <(slow)
  wrk -t1 -c32 -d5s --latency -s "$RUN/load.lua" "http://127.0.0.1:$PORT" > "$RUN/out"
  read -r c1 l1 < <(slow)
  read -r rps p50 p99 errors < <(wrk_summary "$RUN/out")
  printf "slice %2d  %8s req/s  p99 %8s ms  errors %s  slow commits %3s  slow learning %3s  RSS %5d MiB\n" \
    "$i" "$rps" "$p99" "$errors" "$((c1 - c0))" "$((l1 - l0))" "$(( $(rss_kib "$PID") / 1024 ))"
done
grep -E "snapshot (cut|saved)" "$RUN/server.log" || echo "no snapshot finished or cut during the load"
