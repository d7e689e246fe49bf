#!/usr/bin/env bash
# Osprey against the alternatives, side by side in one run (results in BENCHMARKS.md).
#
#   bench/compare.sh            DURATION=10 ROUNDS=2 by default; DURATION=2 ROUNDS=1 for a smoke run
#
# Baselines, built and started here:
#   - Redis (Debian redis-server, no persistence) holding precomputed predictions, measured with
#     redis-benchmark GET (-c 32, random keys, one client thread, no pipelining): the Velox
#     straw-man of precomputing every (user, item) score into a key-value store;
#   - FastAPI + uvicorn (2 workers) + numpy (bench/baselines/fastapi_app.py, versions pinned in
#     bench/baselines/requirements.txt, installed into .bench-data/venv) serving the same three
#     endpoints on the same model, observe durable in SQLite (synchronous=FULL).
# The model is bench/http.sh's (100,000 users, 10,000 items, 1,000,000 ratings, d=50, cached in
# .bench-data/); bench/baselines/export_model.py reads its serving version and user weights from
# Osprey's SQLite store for FastAPI, and computes Redis's precomputed scores from it.
# Then, for each round: Redis GET, Osprey predict/observe/topk, Osprey's topk again on a second
# server started with --no-decision-log (FastAPI logs no decisions: the same work as it does;
# reported on its own line), FastAPI predict/observe/topk,
# wrk -t1 -c32 -d${DURATION}s --latency with prebuilt random requests. Prints a Markdown table
# (with, for each Osprey round, the share of once-a-second samples of /metrics that found a
# snapshot under way: it costs durable observes latency), the ratios against the targets
# (means and each round's own) and each server's RSS.
#
# Knobs: DURATION (10), ROUNDS (2), PORT (Osprey, 18181), NOLOG_PORT (the second, 18183),
# FASTAPI_PORT (18282), REDIS_PORT (18379),
# REDIS_KEYS (1,000,000 precomputed scores), REDIS_REQUESTS (GETs per round, 80,000 × DURATION),
# SNAPSHOT (Osprey's --snapshot-observations, its default 500,000), EVENT_LOOPS (both Osprey
# servers' --event-loops; default the server's own, half the cores), SCAN_THREADS (their
# --scan-threads; default the server's own, one per core), SERVE_ARGS (more options for both
# Osprey servers, e.g. "--item-updates on").
# Installs redis-server and wrk (apt-get) if missing. Talks only to 127.0.0.1; stops the
# processes it started, by PID, when it exits (also on an error or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=100000; ITEMS=10000; RATINGS=1000000; DIM=50
DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18181}; NOLOG_PORT=${NOLOG_PORT:-18183}; FASTAPI_PORT=${FASTAPI_PORT:-18282}; REDIS_PORT=${REDIS_PORT:-18379}
REDIS_KEYS=${REDIS_KEYS:-1000000}; REDIS_REQUESTS=${REDIS_REQUESTS:-$((80000 * DURATION))}
SNAPSHOT=${SNAPSHOT:-500000}
THREAD_OPTS=()
if [ -n "${EVENT_LOOPS:-}" ]; then THREAD_OPTS=(--event-loops "$EVENT_LOOPS"); fi
if [ -n "${SCAN_THREADS:-}" ]; then THREAD_OPTS+=(--scan-threads "$SCAN_THREADS"); fi

# --- what the baselines need
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v wrk >/dev/null; then
  apt_install redis-server wrk
fi
VENV=.bench-data/venv
if [ ! -x "$VENV/bin/uvicorn" ] || ! cmp -s bench/baselines/requirements.txt "$VENV/requirements.txt"; then
  echo "== installing the FastAPI baseline into $VENV (PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r bench/baselines/requirements.txt
  cp bench/baselines/requirements.txt "$VENV/requirements.txt"
fi
PY=$VENV/bin/python

echo "== building osprey (release)"
build_release
prepare_model "$USERS" "$ITEMS" "$RATINGS" "$DIM"
EXPORT=$DATA/fastapi-model
"$PY" bench/baselines/export_model.py export "$DATA" bench "$EXPORT"

RESULTS=.bench-data/compare-run   # this run's scratch files (wrk scripts and outputs)
rm -rf "$RESULTS"
LUA=$RESULTS/lua
mkdir -p "$LUA"

# --- start the three servers
# The second Osprey serves a copy: only one process may write a data directory (its lock,
# docs/operations.md "Where the data lives"). Copied before either starts.
NOLOG_DATA=$RESULTS/nolog-data
cp -a "$DATA" "$NOLOG_DATA"
echo "== starting Osprey on :$PORT"
# The prediction cache is off (CACHE=N to turn it on): wrk cycles 20,000 prebuilt requests, so
# with it on most topk answers would be cache hits, and FastAPI caches nothing.
start_server "$DATA" "$PORT" --snapshot-observations "$SNAPSHOT" --prediction-cache "${CACHE:-0}" ${THREAD_OPTS[@]+"${THREAD_OPTS[@]}"} ${SERVE_ARGS:-}
OSPREY_PID=$PID
curl -sf "http://127.0.0.1:$PORT/v1/models/bench" >/dev/null || { echo "model bench is not being served"; exit 1; }
osprey_observations() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^osprey_observations_total/{s+=$NF} END{print s+0}'; }
OSPREY_OBS_BEFORE=$(osprey_observations)
echo "== starting Osprey without the decision log on :$NOLOG_PORT (topk only)"
start_server "$NOLOG_DATA" "$NOLOG_PORT" --prediction-cache "${CACHE:-0}" --no-decision-log ${THREAD_OPTS[@]+"${THREAD_OPTS[@]}"} ${SERVE_ARGS:-}

echo "== starting FastAPI (uvicorn, 2 workers) on :$FASTAPI_PORT"
rm -f "$DATA"/fastapi-observations.sqlite*
OSPREY_EXPORT=$EXPORT OSPREY_OBSERVATIONS=$DATA/fastapi-observations.sqlite OPENBLAS_NUM_THREADS=1 \
  "$VENV/bin/uvicorn" fastapi_app:app --app-dir bench/baselines --workers 2 --host 127.0.0.1 \
  --port "$FASTAPI_PORT" --log-level warning --no-access-log &
FASTAPI_PID=$!
track_pid $FASTAPI_PID
# Each worker loads its own copy of the model; wait until both answer (healthz names its pid).
for _ in $(seq 1 900); do
  kill -0 $FASTAPI_PID 2>/dev/null || { echo "uvicorn exited"; exit 1; }
  curl -s "http://127.0.0.1:$FASTAPI_PORT/healthz" >> "$RESULTS/fastapi-pids" 2>/dev/null || true
  echo >> "$RESULTS/fastapi-pids"
  [ "$(grep -o '"pid":[0-9]*' "$RESULTS/fastapi-pids" | sort -u | wc -l)" -ge 2 ] && break
  sleep 0.2
done
[ "$(grep -o '"pid":[0-9]*' "$RESULTS/fastapi-pids" | sort -u | wc -l)" -ge 2 ] || { echo "the FastAPI workers did not come up"; exit 1; }
FASTAPI_CHILDREN=$(pgrep -P $FASTAPI_PID | tr '\n' ' ')   # the 2 workers and multiprocessing's tracker
await_pid $FASTAPI_CHILDREN

echo "== starting Redis on :$REDIS_PORT (no persistence) and loading $REDIS_KEYS precomputed scores"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$PWD/$RESULTS" --logfile "$PWD/$RESULTS/redis.log" &
REDIS_PID=$!
track_pid $REDIS_PID
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "redis-server did not come up on port $REDIS_PORT"; exit 1; }
redis_info() { redis-cli -p "$REDIS_PORT" info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1==k{print $2}'; }
REDIS_BASE=$(redis_info memory used_memory)
"$PY" bench/baselines/export_model.py redis "$EXPORT" "$REDIS_KEYS" | redis-cli -p "$REDIS_PORT" --pipe | tail -1
REDIS_USED=$(redis_info memory used_memory)
REDIS_PER_KEY=$(( (REDIS_USED - REDIS_BASE) / REDIS_KEYS ))
echo "Redis: $(redis-cli -p "$REDIS_PORT" dbsize) keys, $REDIS_PER_KEY bytes per key (INFO used_memory), e.g. key:000000000000 = $(redis-cli -p "$REDIS_PORT" get key:000000000000)"

# --- the requests (the same files for Osprey and FastAPI)
write_endpoint_requests "$LUA" "$USERS" "$ITEMS"

# Both HTTP servers answer the same request with the same JSON shape.
for p in "$PORT" "$FASTAPI_PORT"; do
  echo "  :$p predict $(curl -s "http://127.0.0.1:$p/v1/models/bench/users/u1/predict?item=i7")"
done

# The export above wrote the FastAPI model's files (every user's A⁻¹, over a GB): flush them now,
# or their writeback (and ext4's ordered-data journal commits) stalls the first durable commits
# measured below — seen as a p99 near 200 ms in the first round's observe.
sync
echo "== warm-up (predict, 3 s each, not reported)"
wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" >/dev/null
wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$FASTAPI_PORT" >/dev/null

ROWS=$RESULTS/rows   # system endpoint round rps p50 p99 errors snapshot_share (- where no Osprey)
# snapshot_samples PORT: once a second until killed, 1 if the Osprey server on PORT has a
# snapshot under way (osprey_snapshot_in_progress), else 0, one per line on standard output.
snapshot_samples() {
  while sleep 1; do
    curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "osprey_snapshot_in_progress" { print $2 }'
  done
}
run_wrk() {  # run_wrk SYSTEM PORT ENDPOINT ROUND
  local sampler="" share="-" status=0
  if [ "$1" != fastapi ]; then
    snapshot_samples "$2" > "$RESULTS/snapshots" &
    sampler=$!
    track_pid "$sampler"   # stopped on exit too, should wrk fail or the script be stopped
  fi
  wrk -t1 -c32 -d"${DURATION}s" --latency -s "$LUA/$3.lua" "http://127.0.0.1:$2" > "$RESULTS/out" || status=$?
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    untrack_pid "$sampler"
    share=$(awk 'NF { n++; s += $1 } END { printf "%.0f", n ? 100 * s / n : 0 }' "$RESULTS/snapshots")
  fi
  [ "$status" = 0 ] || { echo "wrk failed against $1 $3"; return "$status"; }
  local row; row="$1 $3 $4 $(wrk_summary "$RESULTS/out") $share"
  echo "$row" >> "$ROWS"
  echo "  $row"
}
run_redis() {  # run_redis ROUND
  redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 32 -n "$REDIS_REQUESTS" -r "$REDIS_KEYS" -t get --csv > "$RESULTS/out"
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  local row; row="redis GET $1 $(tr -d '"' < "$RESULTS/out" | awk -F, '$1=="GET"{printf "%.0f %.3f %.3f 0 -", $2, $5, $7}')"
  echo "$row" >> "$ROWS"
  echo "  $row"
}
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS (system endpoint round req/s p50_ms p99_ms errors snapshot_%)"
  run_redis "$round"
  for ep in predict observe topk; do run_wrk osprey "$PORT" "$ep" "$round"; done
  run_wrk osprey-nolog "$NOLOG_PORT" topk "$round"
  for ep in predict observe topk; do run_wrk fastapi "$FASTAPI_PORT" "$ep" "$round"; done
done
MISSES=$(redis_info stats keyspace_misses)

OSPREY_RSS=$(rss_kib $OSPREY_PID)
FASTAPI_RSS=$(rss_kib $FASTAPI_PID $FASTAPI_CHILDREN)
REDIS_RSS=$(rss_kib $REDIS_PID)
OSPREY_OBS=$(( $(osprey_observations) - OSPREY_OBS_BEFORE ))
FASTAPI_OBS=$("$PY" -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from observation').fetchone()[0])" "$DATA/fastapi-observations.sqlite")

# --- the report
echo
echo "== results: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), wrk -t1 -c32 -d${DURATION}s, $ROUNDS round(s), Osprey event loops: ${EVENT_LOOPS:-half the cores}, scan threads: ${SCAN_THREADS:-one per core}, $(date -u +%Y-%m-%d)"
echo
echo "| system | endpoint | round | requests/s | p50 | p99 | errors | Osprey snapshot under way |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
awk 'function commas(n,  s, r) { s = sprintf("%d", n); while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) } return s r }
{
  name = $1 == "redis" ? "Redis (precomputed)" : $1 == "osprey" ? "Osprey" : $1 == "osprey-nolog" ? "Osprey, no decision log" : "FastAPI + numpy"
  ep = $2 == "GET" ? "GET (redis-benchmark)" : $2 == "observe" ? "observe (durable)" : $2 == "topk" ? "topk (10k items)" : $2
  printf "| %s | %s | %d | %s | %.2f ms | %.2f ms | %d | %s |\n", name, ep, $3, commas($4), $5, $6, $7, $8 == "-" ? "–" : $8 " %"
}' "$ROWS"
echo
echo "Against the targets (mean requests/s over the rounds, worst p99; in brackets, each round's own):"
awk -v OFS="" '
  { n[$1" "$2]++; rps[$1" "$2] += $4; round[$1" "$2" "$3] = $4; if ($3 > rounds) rounds = $3
    if ($6 > p99[$1" "$2]) p99[$1" "$2] = $6; p99s[$1" "$2] = p99s[$1" "$2] (p99s[$1" "$2] == "" ? "" : ", ") sprintf("%.2f", $6) }
  function mean(k) { return n[k] ? rps[k] / n[k] : 0 }
  function ratio(a, b) { return mean(b) > 0 ? mean(a) / mean(b) : 0 }
  function perRound(a, b,  r, out) {
    out = ""
    for (r = 1; r <= rounds; r++) if (round[b" "r] > 0) out = out (out == "" ? "" : ", ") sprintf("%.2f", round[a" "r] / round[b" "r])
    return out
  }
  function verdict(ok) { return ok ? "met" : "NOT met" }
  function line(what, a, b, target,  r) {
    r = ratio(a, b)
    printf "- %s: %.2f× [%s] (target ≥ %s×) — %s\n", what, r, perRound(a, b), target, verdict(r >= target)
  }
  function p99line(what, k, target) {
    printf "- %s p99: %.2f ms [%s] (target ≤ %s ms) — %s\n", what, p99[k], p99s[k], target, verdict(p99[k] <= target)
  }
  END {
    line("Osprey predict / Redis GET", "osprey predict", "redis GET", 0.5)
    line("Osprey predict / FastAPI predict", "osprey predict", "fastapi predict", 4)
    p99line("Osprey predict", "osprey predict", 2)
    line("Osprey observe / FastAPI observe", "osprey observe", "fastapi observe", 10)
    p99line("Osprey observe", "osprey observe", 5)
    line("Osprey topk / FastAPI topk", "osprey topk", "fastapi topk", 5)
    line("Osprey topk without the decision log (what FastAPI does) / FastAPI topk", "osprey-nolog topk", "fastapi topk", 5)
  }' "$ROWS"
echo
echo "Memory (RSS after the runs): Osprey $((OSPREY_RSS / 1024)) MiB; FastAPI $((FASTAPI_RSS / 1024)) MiB (all uvicorn processes: supervisor, 2 workers each with its own copy of the weights, multiprocessing tracker); Redis $((REDIS_RSS / 1024)) MiB for $REDIS_KEYS keys."
awk -v per="$REDIS_PER_KEY" -v users="$USERS" -v items="$ITEMS" 'BEGIN {
  keys = users * items
  printf "Redis precomputing every prediction: %d users × %d items = %.0e keys × %d bytes/key ≈ %.0f GB of RAM (INFO used_memory per key at %s keys), stale until recomputed; Osprey holds the model itself.\n", users, items, keys, per, keys * per / 1e9, "'"$REDIS_KEYS"'"
}'
echo "Redis GET misses: ${MISSES:-?} (0: every GET hit a precomputed score)."
echo "Observations committed during the runs: Osprey $OSPREY_OBS, FastAPI $FASTAPI_OBS."
echo "Raw rows: $RESULTS/rows."
