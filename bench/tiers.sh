#!/usr/bin/env bash
# Tiered user state at a million users (docs/operations.md, "Tiered user state"). Builds synthetic stores without ALS
# (`osprey-bench --tiers-build`: random item factors, each user's ridge state from 5 synthetic
# ratings, d = 50, 10,000 items, written through the store API in batches of 10,000), then
#  - in-process (`osprey-bench --tiers-measure`): a manager's start time and resident memory, and
#    the latency of rebuilding cold users (median/p90/p99 over 2,000 random users), right after
#    the store was written and again once the snapshot DB has been read through the page cache;
#  - `osprey serve` (bench/tiers_serve.py): time from spawn to a healthy /healthz, RSS at rest,
#    RSS after warming users with bulk observe requests (each a distinct user), tier metrics.
# Baseline in the same run: the release before tiering (BASE_BINARY, built from commit 735b4f4;
# its store is written in the RDG2 format it reads), and this branch with `--hot-users all`.
#
# Usage: bench/tiers.sh   (env: USERS=1000000 BASE_USERS=100000 HOT=100000 DIR=/tmp/osprey-tiers-bench
#                          BASE_BINARY=/tmp/osprey-base/.build/release/osprey KEEP=0)
# Needs ~20 GB free under DIR at 1M users; deletes DIR at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}
BASE_USERS=${BASE_USERS:-100000}
HOT=${HOT:-100000}
DIR=${DIR:-/tmp/osprey-tiers-bench}
PORT=${PORT:-18431}
BASE_BINARY=${BASE_BINARY:-/tmp/osprey-base/.build/release/osprey}

swift build -c release --product osprey >&2
swift build -c release --product osprey-bench >&2
BIN=.build/release
rm -rf "$DIR"
mkdir -p "$DIR"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$DIR"' EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "Tiered user state, $(date -u +%Y-%m-%dT%H:%MZ): nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GB RAM; load at start $(load)"
echo
build() { local t0=$SECONDS; "$BIN/osprey-bench" --tiers-build "$@" >&2; echo "- built $2 users$([ "${3:-}" = rdg2 ] && echo ' (RDG2)') in $((SECONDS - t0)) s: snapshot DB $(du -sh "$1/snapshots.sqlite" | cut -f1)"; }
[ -x "$BASE_BINARY" ] && build "$DIR/base-rdg2" "$BASE_USERS" rdg2
build "$DIR/base" "$BASE_USERS"
build "$DIR/big" "$USERS"
cp -r "$DIR/base" "$DIR/base-all"
echo
echo "In-process (osprey-bench --tiers-measure), before any server ran on the store; load $(load):"
echo
"$BIN/osprey-bench" --tiers-measure "$DIR/base" all 0
"$BIN/osprey-bench" --tiers-measure "$DIR/big" "$HOT" 2000
sync
t0=$SECONDS
cat "$DIR/big/snapshots.sqlite" > /dev/null
echo
echo "Again, after reading the snapshot DB once through the page cache ($((SECONDS - t0)) s; load $(load)):"
echo
"$BIN/osprey-bench" --tiers-measure "$DIR/big" "$HOT" 2000
echo
echo "\`osprey serve\` (load at start $(load)):"
echo
echo "| build | users | --hot-users | start (spawn → /healthz) | RSS at rest | warm-up: distinct users observed (bulk, 1000/request) | RSS warmed | hot | rebuilds | mean rebuild (server metric) | predict of random users (python client, sequential, mean) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
[ -x "$BASE_BINARY" ] && python3 bench/tiers_serve.py "$BASE_BINARY" "$DIR/base-rdg2" "$PORT" - "$BASE_USERS" "$BASE_USERS" "baseline: release before tiering (735b4f4)"
python3 bench/tiers_serve.py "$BIN/osprey" "$DIR/base-all" "$PORT" all "$BASE_USERS" "$BASE_USERS" "this branch, untiered"
python3 bench/tiers_serve.py "$BIN/osprey" "$DIR/base" "$PORT" "$HOT" "$BASE_USERS" "$BASE_USERS" "this branch, tiered"
python3 bench/tiers_serve.py "$BIN/osprey" "$DIR/big" "$PORT" "$HOT" "$HOT" "$USERS" "this branch, tiered"
echo
echo "load at end: $(load)"
