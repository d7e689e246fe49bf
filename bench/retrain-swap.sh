#!/usr/bin/env bash
# Serving while a retrain runs and its version is swapped in. Results in BENCHMARKS.md.
#
#   bench/retrain-swap.sh [USERS] [ITEMS] [RATINGS] [DIM]     (defaults 10000 5000 200000 20)
#   LOAD=observe bench/retrain-swap.sh 100000 10000 1000000 50
#   OSPREY_BIN=/path/to/osprey LOAD=observe bench/retrain-swap.sh …   (another build)
#   RETRAINS=2 SERVE_OPTIONS="--keep-versions 1" LOG_LEVEL=info LOAD=observe bench/retrain-swap.sh 100000 10000 1000000 50
#     (the second retrain prunes version 1, about 1 GB of snapshot rows at that size: what the
#     prune costs the requests; its `retrain steps` log line gives `seconds.prune`)
#
# LOAD=predict (the default; targets: zero failed requests, p99 during the swap ≤ 3× steady
# state) or LOAD=observe (durable observes of 200,000 pre-built requests over random users: what
# the users' cold rebuilds after a swap cost). Trains a model once (cached in .bench-data/), copies
# its data directory so every run starts from the same version, starts the release server, runs
# wrk -t1 -c32 in 2-second slices: a 10 s warm-up, three slices before the retrain, slices until
# the job is done (RETRAINS jobs, default 1, one after another), then ten after. Each slice prints requests/s, p50, p99, errors, the user
# rebuilds in it, its log commits and learning steps over 25 ms (from /metrics) and the job
# phase at its end. Talks only to 127.0.0.1; stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${1:-10000}; ITEMS=${2:-5000}; RATINGS=${3:-200000}; DIM=${4:-20}
PORT=${PORT:-18191}; LOAD=${LOAD:-predict}; RETRAINS=${RETRAINS:-1}; JOB=1
require_wrk
build_release
DATA=.bench-data/swap-u${USERS}-i${ITEMS}-r${RATINGS}-d${DIM}
mkdir -p "$DATA"
if [ ! -f "$DATA/osprey.sqlite" ]; then
  $BIN generate --users "$USERS" --items "$ITEMS" --ratings "$RATINGS" --dim 10 --noise 0.5 --seed 2 --out "$DATA/ratings.csv"
  $BIN train --data-dir "$DATA" --model bench --ratings "$DATA/ratings.csv" --dim "$DIM" --lambda 0.1 --scale-lambda \
    --iterations 5 2> "$DATA/train.log" || { tail -5 "$DATA/train.log"; rm -f "$DATA"/*.sqlite*; exit 1; }
fi
RUN=$(mktemp -d)
cp "$DATA"/*.sqlite "$RUN/"
start_server "$RUN" "$PORT" ${SERVE_OPTIONS:-}
cleanup() { stop_started; rm -rf "$RUN"; }
trap cleanup EXIT   # after start_server, whose trap only stops the server
# Items i0…i999 are the most popular (Zipf), so all are in the catalogue: no 404s to muddle the count.
case "$LOAD" in
  predict) write_requests "$RUN/load.lua" \
    'wrk.format("GET", "/v1/models/bench/users/u" .. math.random(0, '"$USERS"' - 1) .. "/predict?item=i" .. math.random(0, math.min('"$ITEMS"', 1000) - 1))' ;;
  observe) write_requests "$RUN/load.lua" \
    'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, '"$USERS"' - 1) .. "/observe", {["Content-Type"]="application/json"}, "{\"item\":\"i" .. math.random(0, math.min('"$ITEMS"', 1000) - 1) .. "\",\"label\":" .. math.random(1, 5) .. "}")' 200000 ;;
  *) echo "LOAD is predict or observe"; exit 2 ;;
esac
# counters: the user rebuilds, then the log commits and the learning steps over 25 ms (from
# /metrics), so a slice's p99 can be told apart: the disk (commits) or the learning lock (learning).
counters() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^osprey_user_rebuilds_total\{.*model="bench"/ { r += $NF }
    /^osprey_log_commit_duration_seconds_count/ { c += $NF }
    /^osprey_log_commit_duration_seconds_bucket\{le="0.025"\}/ { c -= $NF }
    /^osprey_learning_duration_seconds_count/ { l += $NF }
    /^osprey_learning_duration_seconds_bucket\{le="0.025"\}/ { l -= $NF }
    END { printf "%d %d %d\n", r, c, l }'
}
slice() {
  local r0 c0 l0 r1 c1 l1 rps p50 p99 errors phase
  read -r r0 c0 l0 < <(counters)
  wrk -t1 -c32 -d2s --latency -s "$RUN/load.lua" "http://127.0.0.1:$PORT" > "$RUN/out"
  read -r r1 c1 l1 < <(counters)
  read -r rps p50 p99 errors < <(wrk_summary "$RUN/out")
  phase=$(curl -s "http://127.0.0.1:$PORT/v1/models/bench/jobs/$JOB" | sed -n 's/.*"phase":"\([a-z]*\)".*"version":\([0-9a-z]*\).*/\1 (version \2)/p')
  printf "%-8s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s  rebuilds %6s  slow commits %3s  slow learning %3s  %s\n" \
    "$1" "$rps" "$p50" "$p99" "$errors" "$((r1 - r0))" "$((c1 - c0))" "$((l1 - l0))" "${phase:-no job}"
}
wrk -t1 -c32 -d10s -s "$RUN/load.lua" "http://127.0.0.1:$PORT" >/dev/null   # warm-up
for i in 1 2 3; do slice before; done
for JOB in $(seq 1 "$RETRAINS"); do
  curl -s -X POST "http://127.0.0.1:$PORT/v1/models/bench/retrain" >/dev/null
  for i in $(seq 1 300); do
    slice "during$JOB"
    curl -s "http://127.0.0.1:$PORT/v1/models/bench/jobs/$JOB" | grep -qE '"phase":"(done|failed)"' && break
  done
done
JOB=$RETRAINS
for i in $(seq 1 10); do slice after; done
for JOB in $(seq 1 "$RETRAINS"); do curl -s "http://127.0.0.1:$PORT/v1/models/bench/jobs/$JOB"; echo; done
