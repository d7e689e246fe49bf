#!/usr/bin/env bash
# Durable observe in the first seconds after a start (BENCHMARKS.md): after a start every user
# is cold (their full ridge state is in the snapshot file, not in memory), so each user's first
# observation costs a rebuild. For each start: `osprey serve` on bench/http.sh's model, a 3 s
# predict warm-up (not reported; it promotes no one), then ROUNDS periods of durable observes
# (wrk -t1 -c32 -d${DURATION}s --latency, the 20,000 prebuilt requests of compare.sh, naming
# ~18,000 users), each with the rebuild counters of /metrics over the period; then a graceful
# stop (which snapshots; SNAPSHOT sets --snapshot-observations, by default too high for one to
# start within the periods). With DROP_CACHES=1 (root) the page cache is dropped before each start,
# so the snapshot rows come from the disk, as after a reboot.
#
#   bench/cold-start.sh                 DURATION=10 ROUNDS=3 STARTS=2 DROP_CACHES=0
#   VARIANTS=$'base|/tmp/base/osprey\nthis|.build/release/osprey\nno warm|.build/release/osprey --no-warm-start' \
#     bench/cold-start.sh               A/B/C: the variants (label|binary [serve options]) alternate, start by
#                                       start, each start in an order rotated by one
#   NEW_USERS=1 bench/cold-start.sh     each start observes users of its own (a fresh seed per start), so
#                                       none of them learned before: no warm start applies to them
#
# Talks only to 127.0.0.1; stops the servers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
require_wrk
DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; STARTS=${STARTS:-2}; PORT=${PORT:-18197}
DROP_CACHES=${DROP_CACHES:-0}
# No snapshot within the periods by default (one costs observes latency; bench/snapshot-load.sh
# measures that): the graceful stop still saves every user changed.
SNAPSHOT=${SNAPSHOT:-100000000}
build_release
prepare_model 100000 10000 1000000 50
LUA=.bench-data/cold-start-run
mkdir -p "$LUA"
write_endpoint_requests "$LUA" 100000 10000
VARIANTS=${VARIANTS:-"this build|$BIN"}
NEW_USERS=${NEW_USERS:-0}
mapfile -t VARIANT_LIST <<< "$VARIANTS"

metric() {  # metric NAME: the model's value of osprey_NAME (0 when absent)
  curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="osprey_$1" '$1 ~ "^"m"[{ ]" || $1 == m { v = $NF } END { print v + 0 }'
}

echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ), drop caches: $DROP_CACHES, new users each start: $NEW_USERS"
echo
echo "| variant | start | period | observes/s | p50 | p99 | errors | rebuilds | of which read ahead | rebuild time in the learning step | warmed | hot users after |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
seed=7
for start in $(seq 1 "$STARTS"); do
  # Each start rotates the order of the variants, so none always runs first after another.
  n=${#VARIANT_LIST[@]}
  for i in $(seq 0 $((n - 1))); do
    variant=${VARIANT_LIST[$(( (i + start - 1) % n ))]}
    [ -n "$variant" ] || continue
    label=${variant%%|*}; command=${variant#*|}
    if [ "$NEW_USERS" = 1 ]; then
      seed=$((seed + 1))
      sed -i "s/math.randomseed([0-9]*)/math.randomseed($seed)/" "$LUA/observe.lua"
    fi
    if [ "$DROP_CACHES" = 1 ]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
    read -r bin extra <<< "$command"
    # shellcheck disable=SC2086  # extra: serve options, split into words
    BIN=$bin start_server "$DATA" "$PORT" --prediction-cache 0 --snapshot-observations "$SNAPSHOT" $extra
    wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" >/dev/null
    for period in $(seq 1 "$ROUNDS"); do
      r0=$(metric user_rebuilds_total); p0=$(metric user_rebuilds_prefetched_total); s0=$(metric user_rebuild_seconds_total)
      wrk -t1 -c32 -d"${DURATION}s" --latency -s "$LUA/observe.lua" "http://127.0.0.1:$PORT" > "$LUA/out"
      r1=$(metric user_rebuilds_total); p1=$(metric user_rebuilds_prefetched_total); s1=$(metric user_rebuild_seconds_total)
      hot=$(metric users_hot); warmed=$(metric users_warmed_total)
      read -r rps p50 p99 errors < <(wrk_summary "$LUA/out")
      echo "| $label | $start | $period | $rps | $p50 ms | $p99 ms | $errors | $((r1 - r0)) | $((p1 - p0)) | $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f s", b - a }') | $warmed | $hot |"
    done
    stop_started
  done
done
