#!/usr/bin/env bash
# Training and retraining at a million users (docs/operations.md, "Training and choosing λ"):
# `osprey train` on generated ratings, then `osprey retrain` offline (the server's retrain path:
# a Manager with the default --hot-users 100000, the whole log and the initial ratings, the given
# λ kept, the new version installed cold), each timed with its peak RSS (/usr/bin/time). Users'
# ridge states are streamed to the store a chunk at a time.
# Baseline in the same run, at BASE_USERS users: the release before streaming (BASE_BINARY, built
# from commit 9a9c0b8, which held every user's state in memory; skipped when absent), and this one:
#   git worktree add /tmp/osprey-stream-base 9a9c0b8 && (cd /tmp/osprey-stream-base && swift build -c release --product osprey)
#
# Usage: bench/train-1m.sh   (env: USERS=1000000 RATINGS_PER_USER=5 ITEMS=10000 DIM=50 ITERATIONS=3
#                             BASE_USERS=100000 BASE_BINARY=/tmp/osprey-stream-base/.build/release/osprey
#                             DIR=/tmp/osprey-train-1m KEEP=0)
# Needs ~25 GB free under DIR at 1M users; deletes DIR at the end unless KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-1000000}; RATINGS_PER_USER=${RATINGS_PER_USER:-5}; ITEMS=${ITEMS:-10000}
DIM=${DIM:-50}; ITERATIONS=${ITERATIONS:-3}; BASE_USERS=${BASE_USERS:-100000}
BASE_BINARY=${BASE_BINARY:-/tmp/osprey-stream-base/.build/release/osprey}
DIR=${DIR:-/tmp/osprey-train-1m}

swift build -c release --product osprey >&2
BIN=.build/release/osprey
rm -rf "$DIR"
mkdir -p "$DIR"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$DIR"' EXIT

echo "Training at a million users, $(date -u +%Y-%m-%dT%H:%MZ): nproc $(nproc), $(free -g | awk '/Mem:/ {print $2}') GB RAM, load at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo
# run LABEL BINARY USERS: generate, train, retrain; one Markdown row per step.
run() {
  local label=$1 bin=$2 users=$3 d="$DIR/$1-$3"
  local ratings=$((users * RATINGS_PER_USER))
  mkdir -p "$d"
  "$bin" generate --users "$users" --items "$ITEMS" --ratings "$ratings" --dim 10 --noise 0.5 --seed 1 --out "$d/ratings.csv" >/dev/null
  /usr/bin/time -f "%e %M" -o "$d/train.time" "$bin" train --data-dir "$d/data" --model big --ratings "$d/ratings.csv" \
    --dim "$DIM" --lambda 0.1 --scale-lambda --iterations "$ITERATIONS" > "$d/train.log" 2>&1 || { tail "$d/train.log"; exit 1; }
  read -r seconds kib < "$d/train.time"
  echo "| $label | $users | $ratings | train | $seconds s | $((kib / 1024)) MB | $(du -sh "$d/data/snapshots.sqlite" | cut -f1) |"
  /usr/bin/time -f "%e %M" -o "$d/retrain.time" "$bin" retrain --data-dir "$d/data" --model big > "$d/retrain.log" 2>&1 || { tail "$d/retrain.log"; exit 1; }
  read -r seconds kib < "$d/retrain.time"
  echo "| $label | $users | $ratings | retrain | $seconds s | $((kib / 1024)) MB | $(du -sh "$d/data/snapshots.sqlite" | cut -f1) |"
  rm -rf "$d"
}
echo "| binary | users | ratings | step | wall time | peak RSS | snapshot DB after |"
echo "|---|---:|---:|---|---:|---:|---:|"
if [ -x "$BASE_BINARY" ]; then run before "$BASE_BINARY" "$BASE_USERS"; fi
run streaming "$BIN" "$BASE_USERS"
run streaming "$BIN" "$USERS"
