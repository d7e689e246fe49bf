#!/usr/bin/env bash
# Predict latency while a retrain runs and its version is swapped in (targets: zero failed requests,
# p99 during the swap ≤ 3× steady state). Results in BENCHMARKS.md.
#
#   bench/retrain-swap.sh [USERS] [ITEMS] [RATINGS] [DIM]     (defaults 10000 5000 200000 20)
#
# Trains a model (cached in .bench-data/), starts the release server, runs wrk -t1 -c32 in 2-second
# slices against predict (random users and items): three before the retrain, then slices until the
# retrain job is done, then three after. Each slice prints requests/s, p50, p99, errors and the
# job phase at its end. Talks only to 127.0.0.1; stops the server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${1:-10000}; ITEMS=${2:-5000}; RATINGS=${3:-200000}; DIM=${4:-20}
PORT=${PORT:-18191}
require_wrk
build_release
DATA=.bench-data/swap-u${USERS}-i${ITEMS}-r${RATINGS}-d${DIM}
mkdir -p "$DATA"
if [ ! -f "$DATA/osprey.sqlite" ]; then
  $BIN generate --users "$USERS" --items "$ITEMS" --ratings "$RATINGS" --dim 10 --noise 0.5 --seed 2 --out "$DATA/ratings.csv"
  $BIN train --data-dir "$DATA" --model bench --ratings "$DATA/ratings.csv" --dim "$DIM" 2> "$DATA/train.log" \
    || { tail -5 "$DATA/train.log"; rm -f "$DATA"/*.sqlite*; exit 1; }
fi
start_server "$DATA" "$PORT"
LUA=$(mktemp -d)
# Items i0…i999 are the most popular (Zipf), so all are in the catalogue: no 404s to muddle the count.
write_requests "$LUA/predict.lua" \
  'wrk.format("GET", "/v1/models/bench/users/u" .. math.random(0, '"$USERS"' - 1) .. "/predict?item=i" .. math.random(0, math.min('"$ITEMS"', 1000) - 1))'
slice() {
  local out; out=$(wrk -t1 -c32 -d2s --latency -s "$LUA/predict.lua" "http://127.0.0.1:$PORT")
  local rps p50 p99 errors phase
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  errors=$(echo "$out" | awk '/Non-2xx/{s+=$NF} /Socket errors/{gsub(",","");s+=$4+$6+$8+$10} END{print s+0}')
  phase=$(curl -s "http://127.0.0.1:$PORT/v1/models/bench/jobs/1" | sed -n 's/.*"phase":"\([a-z]*\)".*"version":\([0-9a-z]*\).*/\1 (version \2)/p')
  printf "%-8s %10s req/s  p50 %8s  p99 %8s  errors %s  %s\n" "$1" "$rps" "$p50" "$p99" "$errors" "${phase:-no job}"
}
wrk -t1 -c32 -d2s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" >/dev/null   # warm-up
for i in 1 2 3; do slice before; done
curl -s -X POST "http://127.0.0.1:$PORT/v1/models/bench/retrain" >/dev/null
for i in $(seq 1 60); do
  slice during
  curl -s "http://127.0.0.1:$PORT/v1/models/bench/jobs/1" | grep -qE '"phase":"(done|failed)"' && break
done
for i in 1 2 3; do slice after; done
curl -s "http://127.0.0.1:$PORT/v1/models/bench/jobs/1"; echo
rm -rf "$LUA"
