#!/usr/bin/env bash
# Tiered user state at a million users (issue 4). Builds synthetic stores without ALS
# (`osprey-bench --tiers-build`: random item factors, each user's ridge state from 5 synthetic
# ratings, d = 50, 10,000 items), then measures `osprey serve` on them (bench/tiers_serve.py:
# start time, resident memory at rest and after warming users with observe requests, tier
# metrics) and, in-process, the rebuild latency of cold users (`osprey-bench --tiers-measure`).
# Baseline in the same run: the untiered store (`--hot-users all`: every user's full state
# loaded at start, as before tiering) on a 100,000-user store.
#
# Usage: bench/tiers.sh            (USERS=1000000 BASE_USERS=100000 HOT=100000 DIR=/tmp/osprey-tiers-bench)
# Needs ~25 GB free under DIR at 1M users; deletes DIR at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
BASE_USERS=${BASE_USERS:-100000}
HOT=${HOT:-100000}
DIR=${DIR:-/tmp/osprey-tiers-bench}
PORT=${PORT:-18431}

swift build -c release --product osprey >&2
swift build -c release --product osprey-bench >&2
BIN=.build/release
rm -rf "$DIR"
mkdir -p "$DIR"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$DIR"' EXIT

echo "# Tiered user state: $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
time_build() { local t0=$SECONDS; "$BIN/osprey-bench" --tiers-build "$1" "$2" >&2; echo "- built $2 users in $((SECONDS - t0)) s; snapshot DB $(du -sh "$1/snapshots.sqlite" | cut -f1)"; }
time_build "$DIR/base" "$BASE_USERS"
time_build "$DIR/big" "$USERS"
cp -r "$DIR/base" "$DIR/base-tiered"
echo
echo "In-process (osprey-bench --tiers-measure), before any server has run; load $(cut -d' ' -f1-3 /proc/loadavg):"
echo
"$BIN/osprey-bench" --tiers-measure "$DIR/base" all 0
"$BIN/osprey-bench" --tiers-measure "$DIR/big" "$HOT" 2000
echo
echo "| store | users | --hot-users | start (spawn → /healthz) | RSS at rest | warmed users (observe) | RSS warmed | hot | rebuilds | mean rebuild (server) | predict, random users (python client, sequential) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
python3 bench/tiers_serve.py "$BIN/osprey" "$DIR/base" "$PORT" all "$BASE_USERS" "$BASE_USERS" "baseline: untiered"
python3 bench/tiers_serve.py "$BIN/osprey" "$DIR/base-tiered" "$PORT" "$HOT" "$BASE_USERS" "$BASE_USERS" "tiered"
python3 bench/tiers_serve.py "$BIN/osprey" "$DIR/big" "$PORT" "$HOT" "$HOT" "$USERS" "tiered"
echo
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
