#!/usr/bin/env bash
# The same model served from SQLite (the baseline) and from PostgreSQL (`serve --store`), one
# after the other in one run, with wrk on loopback (results in BENCHMARKS.md).
#
#   bench/postgres.sh [USERS] [ITEMS] [RATINGS] [DIM]      (defaults 100000 10000 1000000 50)
#
# Builds release; generates and trains the model into a data directory (cached in .bench-data/,
# as bench/http.sh does) and into a throwaway PostgreSQL 15 server (scripts/postgres-server.sh,
# on a unix socket; started here, stopped at the end), timing the train. Then for each store it
# starts the server and runs wrk -t1 -c32 -d10s against predict, durable observe and
# whole-catalogue topk, twice each, alternating, and prints requests/s, p50 and p99 (ms) and the
# server's RSS. Talks only to 127.0.0.1; stops the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${1:-100000}; ITEMS=${2:-10000}; RATINGS=${3:-1000000}; DIM=${4:-50}
PORT=${PORT:-18182}
require_wrk
build_release
prepare_model "$USERS" "$ITEMS" "$RATINGS" "$DIM"

PG=$(mktemp -d /tmp/osprey-bench-pg-XXXXXX)
chmod 755 "$PG"
stop_postgres() { bash scripts/postgres-server.sh stop "$PG/server" >/dev/null 2>&1 || true; rm -rf "$PG"; }
URL=$(OWNER_PID=$$ bash scripts/postgres-server.sh start "$PG/server")
echo "== PostgreSQL: $URL ($(postgres --version 2>/dev/null || ls /usr/lib/postgresql))"
start=$(date +%s.%N)
$BIN train --store "$URL" --model bench --ratings "$DATA/ratings.csv" --dim "$DIM" --lambda 0.1 --scale-lambda \
  --iterations 5 2>&1 | grep -vE "iteration [0-9]+/"
echo "train into PostgreSQL: $(echo "$(date +%s.%N) - $start" | bc) s (the data directory's train: $(grep -o 'train: .*' "$DATA/train.log" || echo 'see its train.log'))"

LUA=$(mktemp -d)
write_endpoint_requests "$LUA" "$USERS" "$ITEMS"
run_store() {
  local label=$1
  shift
  echo "== $label"
  $BIN serve "$@" --port "$PORT" --log-level ${LOG_LEVEL:-warning} --snapshot-observations "${SNAPSHOT:-100000}" \
    --prediction-cache "${CACHE:-0}" &
  PID=$!
  track_pid $PID
  local began=$(date +%s.%N)
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
  echo "start: $(echo "$(date +%s.%N) - $began" | bc) s to answer /healthz; RSS $(( $(rss_kib $PID) / 1024 )) MiB"
  wrk -t1 -c32 -d3s -s "$LUA/predict.lua" "http://127.0.0.1:$PORT" >/dev/null
  for round in 1 2; do
    for ep in predict observe topk; do
      wrk -t1 -c32 -d10s --latency -s "$LUA/$ep.lua" "http://127.0.0.1:$PORT" > "$LUA/out"
      read -r rps p50 p99 errors < <(wrk_summary "$LUA/out")
      printf '%-8s round %d: %7s req/s  p50 %6s ms  p99 %7s ms  errors %s\n' "$ep" "$round" "$rps" "$p50" "$p99" "$errors"
    done
  done
  echo "RSS after the runs: $(( $(rss_kib $PID) / 1024 )) MiB; $(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^osprey_group_commits_total' || true)"
  kill -TERM $PID; wait $PID || true
  untrack_pid $PID
}
run_store "SQLite (--data-dir $DATA)" --data-dir "$DATA"
run_store "PostgreSQL (--store)" --store "$URL"
rm -rf "$LUA"
stop_postgres
