#!/usr/bin/env bash
# What exploring top-k answers and the decision log cost over HTTP (docs/operations.md, "Exploration and the decision log"): whole-catalogue
# topk (k=10) of bench/http.sh's model (100k users, 10k items, d=50), random users, wrk -t1 -c32,
# against two servers on the same store — one with --no-decision-log (the baseline: greedy, no
# event_id), one logging every decision — and, on the logging one, each exploration policy in turn
# (set through PUT .../exploration; exploring answers choose among the greedy shortlist of 100).
# Alternating, twice each. Prints req/s, p50/p99 and the decisions the log wrote.
#
#   bench/exploration.sh [USERS] [ITEMS] [RATINGS] [DIM]      (defaults 100000 10000 1000000 50)
#
# Installs wrk if missing; reuses bench/http.sh's cached model in .bench-data/ (the logging server writes its
# decisions to that store's decisions.sqlite). The prediction cache is off, as in bench/http.sh.
# Talks only to 127.0.0.1; stops what it started and sets the policy back to greedy.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${1:-100000}; ITEMS=${2:-10000}; RATINGS=${3:-1000000}; DIM=${4:-50}
DURATION=${DURATION:-10}
PLAIN_PORT=${PLAIN_PORT:-18193}; LOG_PORT=${LOG_PORT:-18194}
require_wrk
build_release
DATA=.bench-data/u${USERS}-i${ITEMS}-r${RATINGS}-d${DIM}
if [ ! -f "$DATA/osprey.sqlite" ]; then echo "no model in $DATA: run bench/http.sh $USERS $ITEMS $RATINGS $DIM first"; exit 1; fi
start_server "$DATA" "$PLAIN_PORT" --prediction-cache 0 --no-decision-log
start_server "$DATA" "$LOG_PORT" --prediction-cache 0
MODEL="http://127.0.0.1:$LOG_PORT/v1/models/bench"
trap 'curl -s -X PUT "$MODEL/exploration" -d "{\"policy\":\"greedy\"}" >/dev/null || true; stop_started' EXIT
LUA=$(mktemp -d)
write_endpoint_requests "$LUA" "$USERS" "$ITEMS"
echo "== warm-up (3 s each, not reported)"
for port in $PLAIN_PORT $LOG_PORT; do wrk -t1 -c32 -d3s -s "$LUA/topk.lua" "http://127.0.0.1:$port" >/dev/null; done
printf "%-28s %10s %9s %9s\n" "configuration" "req/s" "p50 ms" "p99 ms"
for round in 1 2; do
  for config in "no-log greedy" "log greedy" "log epsilon_greedy(0.1)" "log linucb(1.0)" "log thompson(1.0)"; do
    policy=${config#* }
    if [ "${config%% *}" = "no-log" ]; then port=$PLAIN_PORT; else
      port=$LOG_PORT
      curl -sf -X PUT "$MODEL/exploration" -d "{\"policy\":\"$policy\"}" >/dev/null
    fi
    wrk -t1 -c32 -d"${DURATION}s" --latency -s "$LUA/topk.lua" "http://127.0.0.1:$port" > "$LUA/out"
    read -r rps p50 p99 errors < <(wrk_summary "$LUA/out")
    printf "%-28s %10s %9s %9s%s\n" "$config (round $round)" "$rps" "$p50" "$p99" "$([ "$errors" -gt 0 ] && echo "  ($errors errors)")"
  done
done
sleep 0.2
echo "decisions logged: $(curl -s "$MODEL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["decisions"])')"
rm -rf "$LUA"
