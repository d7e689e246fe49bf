#!/usr/bin/env bash
# A soak of the release server over HTTP: a mixed load for DURATION seconds (default 30 minutes)
# while retrains, rollbacks and snapshots happen, then a loss check across a SIGKILL. Targets:
# after the warm-up RSS within ±10 % of its median, p99 without a trend, 0 errors, nothing
# acknowledged lost.
#
#   bench/soak.sh
#   DURATION=120 CONTROL=30-45 OUT=/tmp/soak bench/soak.sh          (a short trial)
#   OSPREY_BIN=/path/to/osprey COMMIT=abc1234 bench/soak.sh           (another build; COMMIT names it)
#
# - Load: wrk -t1 -cCONNECTIONS (16) in back-to-back 10-second segments (--latency, so each gives
#   a p99), each connection pausing DELAY_MS (4) after each answer (about 3,000 requests/s here;
#   0: unpaced, the machine saturated), each segment a new set of 20,000 prebuilt requests (the
#   Lua mix below):
#   45 % predict, 20 % greedy topk (`"explore": false`), 10 % exploring topk (the model's policy,
#   POLICY, default linucb(1.0)), 20 % durable observe (half with an observation_id), 5 % bulk
#   observations of 5. After each segment: the server's RSS (/proc/PID/status), the segment's
#   requests/s, p50/p99/max, non-2xx and socket errors (by status and error code).
# - Control (bench/soak.py load): a retrain after a pause of CONTROL (60-120) seconds from the end
#   of the last action, polled until done; after every second one a rollback to the version
#   before and, 10–20 s later, to the new one. Snapshots every SNAPSHOT (100000) observations
#   (`serve --snapshot-observations`); SERVE_OPTIONS adds serve options (`--hot-users all`, say).
# - Loss check: concurrent observes, each with a unique observation_id; the server is SIGKILLed
#   KILL_AFTER (3) seconds into the burst, restarted on the same data directory, and every
#   acknowledged observation is sent again: each must be answered `duplicate: true`.
# - Writes OUT.csv (samples), OUT-actions.csv (control actions with their times), OUT.svg (RSS,
#   p99 and requests/s over time, actions marked) and OUT.md (summary, PASS/FAIL); OUT defaults
#   to bench/results/DATE-soak. The warm-up is left out of the RSS and p99 verdicts: the first
#   10 % of DURATION and, further, until the hot tier first holds 95 % of its steady size (the
#   median of users_hot over the run's second half; the report says when); WARMUP=S gives it
#   instead, in seconds.
#
# The model is bench/http.sh's (100,000 users, 10,000 items, 1,000,000 ratings, d = 50, cached in
# .bench-data/); each run serves a fresh copy of it in .bench-data/soak-run, so runs start alike
# and the cache stays as trained. Needs python3 (standard library). Talks only to 127.0.0.1;
# stops every process it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
DURATION=${DURATION:-1800}; PORT=${PORT:-18197}
OUT=${OUT:-bench/results/$(date +%F)-soak}
CONNECTIONS=${CONNECTIONS:-16}; DELAY_MS=${DELAY_MS:-4}
SNAPSHOT=${SNAPSHOT:-100000}; POLICY=${POLICY:-linucb(1.0)}
CONTROL=${CONTROL:-60-120}; KILL_AFTER=${KILL_AFTER:-3}
WARMUP_RULE="10 % of the run"; [ -z "${WARMUP:-}" ] || WARMUP_RULE="given as WARMUP"
WARMUP=${WARMUP:-$((DURATION / 10))}
USERS=100000; ITEMS=10000
require_wrk
build_release
prepare_model $USERS $ITEMS 1000000 50
mkdir -p "$(dirname "$OUT")"

RUN=.bench-data/soak-run
fresh_copy "$RUN"
# Several versions a run; keep few, so the snapshot store (about 1 GB a version) stays small.
# The decision log is capped so that it reaches its steady state (pruning as it writes).
SERVE=(--snapshot-observations "$SNAPSHOT" --keep-versions 3 --max-decisions 1000000 ${SERVE_OPTIONS:-})

cat > "$RUN/mix.lua" <<'LUAEOF'
-- bench/soak.sh's request mix. Arguments: seed users items pause_ms.
local reqs, count, n, pause = {}, 20000, 0, 0
errors = {}
init = function(args)
  local seed, users, items = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  pause = tonumber(args[4]) or 0
  math.randomseed(seed)
  local json = {["Content-Type"] = "application/json"}
  local function user() return "/v1/models/bench/users/u" .. math.random(0, users - 1) end
  local function item() return "i" .. math.random(0, items - 1) end
  for r = 1, count do
    local x = math.random(100)
    if x <= 45 then
      reqs[r] = wrk.format("GET", user() .. "/predict?item=" .. item())
    elseif x <= 65 then
      reqs[r] = wrk.format("POST", user() .. "/topk", json, '{"k":10,"explore":false}')
    elseif x <= 75 then
      reqs[r] = wrk.format("POST", user() .. "/topk", json, '{"k":10}')
    elseif x <= 95 then
      local body = '{"item":"' .. item() .. '","label":' .. math.random(1, 5)
      if r % 2 == 0 then body = body .. ',"observation_id":"soak-' .. seed .. '-' .. r .. '"' end
      reqs[r] = wrk.format("POST", user() .. "/observe", json, body .. "}")
    else
      local list = {}
      for j = 1, 5 do
        list[j] = '{"uid":"u' .. math.random(0, users - 1) .. '","item":"' .. item() .. '","label":' .. math.random(1, 5) .. '}'
      end
      reqs[r] = wrk.format("POST", "/v1/models/bench/observations", json, '{"observations":[' .. table.concat(list, ",") .. ']}')
    end
  end
end
request = function() n = n % count + 1; return reqs[n] end
delay = function() return pause end
response = function(status, headers, body)
  if status > 299 then
    local key = status .. ":" .. (string.match(body, '"code":"([%w_]+)"') or "-")
    errors[key] = (errors[key] or 0) + 1
  end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("errors")) do io.write("ERRORS ", key, " ", count, "\n") end
  end
end
LUAEOF

start_server "$RUN" "$PORT" "${SERVE[@]}"
MODEL=http://127.0.0.1:$PORT/v1/models/bench
[ "$(curl -sf "$MODEL" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"])')" = "$ITEMS" ] \
  || { echo "model bench does not have $ITEMS items: the mix would ask for unknown ones"; exit 1; }
curl -sf -X PUT "$MODEL/exploration" -d "{\"policy\":\"$POLICY\"}" >/dev/null
echo "== soak: $DURATION s on port $PORT, server PID $PID, RSS $(rss_kib "$PID") KiB at start; output $OUT.*"
python3 bench/soak.py load --port "$PORT" --pid "$PID" --duration "$DURATION" --lua "$RUN/mix.lua" \
  --connections "$CONNECTIONS" --delay-ms "$DELAY_MS" --users $USERS --items $ITEMS \
  --control-min "${CONTROL%-*}" --control-max "${CONTROL#*-}" --samples "$OUT.csv" --actions "$OUT-actions.csv"

kill -0 "$PID" 2>/dev/null || { echo "the server (PID $PID) died during the load: see $OUT.csv and $OUT-actions.csv"; exit 1; }
echo "== loss check: observes with unique ids, SIGKILL after $KILL_AFTER s, restart, resend the acknowledged"
python3 bench/soak.py burst --port "$PORT" --users $USERS --items $ITEMS --out "$RUN/burst.json" &
BURST=$!
track_pid $BURST
sleep "$KILL_AFTER"
kill -KILL "$PID"
wait "$PID" 2>/dev/null || true
untrack_pid "$PID"
wait "$BURST"
untrack_pid "$BURST"
begin=$(date +%s.%N)
start_server "$RUN" "$PORT" "${SERVE[@]}"
restart=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$begin" "$(date +%s.%N)")
python3 bench/soak.py verify --port "$PORT" --burst "$RUN/burst.json" --restart-seconds "$restart" --out "$RUN/loss.json"
stop_started

python3 - "$RUN/meta.json" <<PYEOF
import json, sys
json.dump({"date": "$(date +%F)", "commit": "${COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo +changes)}",
           "binary": "$BIN", "machine": "$(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
           "command": "DURATION=$DURATION CONTROL=$CONTROL CONNECTIONS=$CONNECTIONS DELAY_MS=$DELAY_MS SNAPSHOT=$SNAPSHOT bench/soak.sh", "connections": $CONNECTIONS, "delay_ms": $DELAY_MS,
           "segment": 10, "policy": "$POLICY", "serve": "${SERVE[*]}", "control": "$CONTROL",
           "kill_after": $KILL_AFTER, "warmup_rule": "$WARMUP_RULE"},
          open(sys.argv[1], "w"))
PYEOF
python3 bench/soak.py report --samples "$OUT.csv" --actions "$OUT-actions.csv" --loss "$RUN/loss.json" \
  --meta "$RUN/meta.json" --md "$OUT.md" --svg "$OUT.svg" --warmup "$WARMUP"
