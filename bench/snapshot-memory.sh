#!/usr/bin/env bash
# Resident memory through snapshots with item updates on: the soak's request mix (bench/soak.sh)
# against the soak's model, with no retrains or rollbacks, RSS and `osprey_snapshot_in_progress`
# sampled every 0.5 s. Prints each snapshot's RSS before it, its highest RSS during it, the rise,
# and what the trim after it handed back (the `snapshot saved` log line), then the medians.
#
#   bench/snapshot-memory.sh                                  (330 s, about 3 snapshots)
#   DURATION=600 SERVE_OPTIONS="--item-updates off" bench/snapshot-memory.sh
#   OSPREY_BIN=/path/to/osprey bench/snapshot-memory.sh       (another build)
#
# Load: wrk -t1 -c16, each connection pausing 4 ms after each answer, in 10-second segments each
# with a new seed (so the observed users spread over the 100,000 as in the soak). Snapshots every
# 100,000 observations. Talks only to 127.0.0.1; stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-330}; PORT=${PORT:-18297}
OUT=${OUT:-/tmp/osprey-snapshot-memory}
require_wrk
build_release
prepare_model 100000 10000 1000000 50
RUN=.bench-data/snapshot-memory-run
fresh_copy "$RUN"
# The soak's mix, as bench/soak.sh writes it.
sed -n "/^cat > \"\$RUN\/mix.lua\" <<'LUAEOF'$/,/^LUAEOF$/p" bench/soak.sh | sed '1d;$d' > "$RUN/mix.lua"
[ -s "$RUN/mix.lua" ] || { echo "could not read the request mix from bench/soak.sh"; exit 1; }
LOG_LEVEL=info start_server "$RUN" "$PORT" --item-updates on --snapshot-observations 100000 ${SERVE_OPTIONS:-} > "$OUT.log" 2>&1
curl -sf -X PUT "http://127.0.0.1:$PORT/v1/models/bench/exploration" -d '{"policy":"linucb(1.0)"}' >/dev/null
: > "$OUT.rss"
( while kill -0 "$PID" 2>/dev/null; do
    echo "$(date +%s.%N) $(awk '/VmRSS/{print $2}' /proc/"$PID"/status 2>/dev/null) $(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^osprey_snapshot_in_progress/{print $2}')" >> "$OUT.rss"
    sleep 0.5
  done ) &
track_pid $!
echo "== $DURATION s of the soak's mix on port $PORT, server PID $PID; samples in $OUT.rss, log in $OUT.log"
: > "$OUT.wrk"
for seed in $(seq 1 $((DURATION / 10))); do
  wrk -t1 -c16 -d10s --latency -s "$RUN/mix.lua" "http://127.0.0.1:$PORT" -- "$seed" 100000 10000 4 >> "$OUT.wrk"
done
stop_started
python3 - "$OUT.rss" "$OUT.log" <<'PYEOF'
import re, statistics, sys
samples = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 3: samples.append((float(f[0]), int(f[1]) / 1024, f[2] == "1.0"))
returned = [int(m.group(1)) / 2**20 for m in re.finditer(r"memory\.returned\.bytes=(\d+)", open(sys.argv[2]).read())]
runs, i = [], 0
while i < len(samples):
    if samples[i][2]:
        j = i
        while j < len(samples) and samples[j][2]: j += 1
        before = samples[i - 1][1] if i > 0 else samples[i][1]
        runs.append((samples[i][0] - samples[0][0], before, max(s[1] for s in samples[i:j]), samples[j - 1][0] - samples[i][0]))
        i = j
    else:
        i += 1
print("snapshot at | RSS before | highest during | rise | lasted | handed back after")
for k, (t, before, peak, lasted) in enumerate(runs):
    back = f"{returned[k]:.0f} MiB" if k < len(returned) else "-"
    print(f"{t:7.0f} s | {before:7.0f} MiB | {peak:7.0f} MiB | {peak - before:+5.0f} MiB | {lasted:4.0f} s | {back}")
if runs:
    print(f"median rise {statistics.median(p - b for _, b, p, _ in runs):+.0f} MiB over {len(runs)} snapshots; "
          f"median handed back {statistics.median(returned[:len(runs)]) if returned else 0:.0f} MiB")
PYEOF
