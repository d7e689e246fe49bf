#!/usr/bin/env bash
# Where a long-running server's resident memory goes: the soak's request mix (bench/soak.sh) with
# a version change every 40-60 s, and once a minute gdb makes the server hand back what glibc can
# (`malloc_trim(0)`) and print its `malloc_stats()`. Each sample gives RSS before and after that
# trim and malloc's bytes in use, so a rise of RSS can be told apart as live data (in use grows)
# or fragmentation (RSS after the trim grows while in use stays flat: free memory in pages that
# also hold live blocks, which glibc cannot return). gdb stops the server for about a second at
# each sample: this measures memory, not latency.
#
# Usage: bench/fragmentation.sh
#   DURATION (900 s) of load; the first version change comes after a retrain at 240 s, when the
#   hot tier has nearly filled. SERVE_OPTIONS adds serve options. Environment variables such as
#   MALLOC_MMAP_THRESHOLD_ reach the server (glibc's malloc settings, for comparisons).
#   OUT (bench/results/DATE-fragmentation) gets OUT.csv, one row per sample (and per rollback).
#   bench/fragmentation.sh --summary FILE.csv prints an earlier run's samples again.
# Model: bench/soak.sh's (100,000 users, 10,000 items, d = 50). Only talks to 127.0.0.1 and
# stops only the processes it started. Needs gdb and wrk (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

# Each sample: RSS after the trim, malloc in use, their difference (what malloc holds in pages it
# cannot return, plus the mapped binary, ~42 MiB) and the hot tier.
summarize() {
  python3 - "$1" <<'PYEOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["event"] == "sample" and r["malloc_in_use_bytes"]]
print("   t   RSS after trim   malloc in use   difference   hot users   (MiB)")
for r in rows:
    after, used = int(r["rss_after_kib"]) / 1024, int(r["malloc_in_use_bytes"]) / 1048576
    print(f"{r['t_s']:>4} s   {after:>8,.0f}        {used:>8,.0f}      {after - used:>6,.0f}     {float(r['users_hot']):>8,.0f}")
PYEOF
}
if [ "${1:-}" = "--summary" ]; then summarize "$2"; exit; fi

DURATION=${DURATION:-900}; PORT=${PORT:-18199}
OUT=${OUT:-bench/results/$(date +%F)-fragmentation}
USERS=100000; ITEMS=10000
require_wrk
command -v gdb >/dev/null || apt_install gdb
build_release
prepare_model $USERS $ITEMS 1000000 50
mkdir -p "$(dirname "$OUT")"

RUN=.bench-data/fragmentation-run
fresh_copy "$RUN"
# The soak's request mix, taken from bench/soak.sh so the two stay the same.
sed -n "/<<'LUAEOF'/,/^LUAEOF/p" bench/soak.sh | sed '1d;$d' > "$RUN/mix.lua"

LOG="$RUN/server.log"
LOG_LEVEL=info start_server "$RUN" "$PORT" --snapshot-observations 100000 --keep-versions 3 \
  --max-decisions 1000000 ${SERVE_OPTIONS:-} 2>> "$LOG"  # appended to: the samples write markers into it
MODEL=http://127.0.0.1:$PORT/v1/models/bench
echo "== fragmentation: $DURATION s on port $PORT, server PID $PID (malloc settings: $(env | grep -E '^MALLOC_|^GLIBC_TUNABLES' | tr '\n' ' '))"

start=$SECONDS
( segment=0
  while [ $((SECONDS - start)) -lt "$DURATION" ]; do
    segment=$((segment + 1))
    wrk -t1 -c16 -d10s --timeout 5s -s "$RUN/mix.lua" "http://127.0.0.1:$PORT" -- $((700000 + segment)) $USERS $ITEMS 4 >/dev/null 2>&1 || true
  done ) &
LOAD=$!
track_pid $LOAD

echo "t_s,event,rss_before_kib,rss_after_kib,malloc_in_use_bytes,malloc_system_bytes,users_hot,version" > "$OUT.csv"
metric() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
sleep 240
echo "[$((SECONDS - start)) s] retrain (the model has one version; rollbacks alternate between two)"
curl -sf -X POST "$MODEL/retrain" -d '{"wait":true}' >/dev/null
target=1; changed=$SECONDS; sampled=0
while [ $((SECONDS - start)) -lt "$DURATION" ]; do
  sleep 5
  if [ $((SECONDS - changed)) -ge 40 ]; then
    curl -sf -X POST "$MODEL/rollback" -d "{\"version\":$target}" >/dev/null
    echo "$((SECONDS - start)),rollback to v$target,,,,,," >> "$OUT.csv"
    target=$((3 - target)); changed=$SECONDS
  fi
  if [ $((SECONDS - sampled)) -ge 60 ]; then
    sampled=$SECONDS
    before=$(rss_kib $PID)
    marker="fragmentation sample $SECONDS"
    echo "$marker" >> "$LOG"
    gdb -batch -p $PID -ex 'call (int)malloc_trim(0)' -ex 'call (void)malloc_stats()' >/dev/null 2>&1
    after=$(rss_kib $PID)
    sleep 0.5   # malloc_stats writes to the server's standard error
    read -r used system < <(sed -n "/^$marker\$/,\$p" "$LOG" | awk '/^Total/ {t = 1} t && /system bytes/ {s = $4} t && /in use bytes/ {u = $5} END {print u, s}')
    echo "$((SECONDS - start)),sample,$before,$after,$used,$system,$(metric 'osprey_users_hot{model="bench"}'),$(metric 'osprey_model_version{model="bench"}')" >> "$OUT.csv"
    echo "[$((SECONDS - start)) s] RSS $((before / 1024)) MiB, after the trim $((after / 1024)) MiB; malloc in use $((used / 1048576)) MiB"
  fi
done
wait $LOAD 2>/dev/null || true
untrack_pid $LOAD
summarize "$OUT.csv"
echo "wrote $OUT.csv"
