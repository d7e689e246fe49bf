#!/usr/bin/env bash
# Throughput of a partitioned cluster (docs/operations.md, "Partitioned serving"): 1, 2 and 3
# `osprey serve --node` processes on one PostgreSQL behind HAProxy, against a lone
# `osprey serve --store` (the baseline) and a lone node without HAProxy (the proxy's cost).
#
#   bench/cluster.sh            USERS=20000 ITEMS=2000 RATINGS=200000 DIM=20 NODES="1 2 3"
#                               DURATION=20 CONNECTIONS=32 WARMUP_MAX=120 PORT=18190
#                               SERVE_OPTIONS="--item-updates on"  (every server, lone and nodes)
#
# Builds release (OSPREY_BIN=path uses that binary instead, as bench/lib.sh does); starts a
# throwaway PostgreSQL (scripts/postgres-server.sh, stopped at the end), generates a model and
# trains it into it. Then, one setup at a time, each stopped (SIGTERM, waited for) before the next:
#   lone       `serve --store URL`, no --node, wrk straight to it;
#   1 direct   node n1, wrk straight to it;
#   N haproxy  for N in NODES: nodes n1..nN and HAProxy with the configuration
#              `osprey router-config` writes for them, wrk to HAProxy once every node serves
#              its users through it (GET user info of a sample of users answers 200).
# For each: a warm-up that visits every user once in turn (GET user info; a node adopts a user
# from PostgreSQL on its first request, so without it the runs would measure adoption), timed and
# reported, at most WARMUP_MAX s; then wrk -t1 -cCONNECTIONS -dDURATION against predict (GET,
# random trained user and item) and durable observe (POST, random trained user, item and label
# 1–5). Reports requests/s, p50, p99, non-2xx answers and socket errors (a non-2xx answer is
# then shown by status and body for a sample of the same requests), and where the CPU went:
# CPU seconds of the Osprey processes, HAProxy, PostgreSQL (its postmaster and backends) and wrk
# from /proc, the whole machine's busy time from /proc/stat, each divided by the run's wall time
# (so in cores). Everything shares this machine's cores: on 2 cores throughput
# cannot grow with N, and the table shows the cores used up.
#
# Prints the table and writes it, with the machine, to bench/results/DATE-cluster.md (OUT=file
# elsewhere). Uids and items go into paths percent-encoded as RFC 3986 says (the generated ones,
# u123 and i45, need none). Talks only to 127.0.0.1; stops the processes it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
USERS=${USERS:-20000}; ITEMS=${ITEMS:-2000}; RATINGS=${RATINGS:-200000}; DIM=${DIM:-20}
NODES=${NODES:-"1 2 3"}; DURATION=${DURATION:-20}; CONNECTIONS=${CONNECTIONS:-32}; WARMUP_MAX=${WARMUP_MAX:-120}
PORT=${PORT:-18190}             # lone server and nodes: PORT, PORT+1, ...; HAProxy: PORT+10
FRONT=$((PORT + 10))
OUT=${OUT:-bench/results/$(date +%F)-cluster.md}
MODEL=bench
HZ=$(getconf CLK_TCK)
CORES=$(nproc)

command -v haproxy >/dev/null || apt_install haproxy
require_wrk
build_release
MAXN=$(printf '%s\n' $NODES | sort -n | tail -1)
for p in $(seq "$PORT" $((PORT + MAXN))) $FRONT; do
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is in use (PORT=... to move)"; exit 1; fi
done

WORK=$(mktemp -d /tmp/osprey-bench-cluster-XXXXXX)
chmod 755 "$WORK"  # the PostgreSQL server runs as `postgres` when we are root
PG=$WORK/pg
cleanup() {
  stop_started
  bash scripts/postgres-server.sh stop "$PG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
URL=$(OWNER_PID=$$ bash scripts/postgres-server.sh start "$PG")
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | tail -1)
POSTMASTER=$(head -1 "$PG/data/postmaster.pid")
echo "== PostgreSQL: $URL"

$BIN generate --users "$USERS" --items "$ITEMS" --ratings "$RATINGS" --dim 10 --noise 0.5 --seed 1 --out "$WORK/ratings.csv"
start=$(date +%s.%N)
$BIN train --store "$URL" --model "$MODEL" --ratings "$WORK/ratings.csv" --dim "$DIM" --lambda 0.1 --scale-lambda \
  --iterations 5 2>&1 | grep -vE "iteration [0-9]+/"
echo "train into PostgreSQL: $(echo "$(date +%s.%N) - $start" | bc) s"
# The trained set: every uid and item of the ratings (the generator writes no quoted fields).
tail -n +2 "$WORK/ratings.csv" | cut -d, -f1 | sort -u > "$WORK/users.txt"
tail -n +2 "$WORK/ratings.csv" | cut -d, -f2 | sort -u > "$WORK/items.txt"
echo "trained set: $(wc -l < "$WORK/users.txt") users, $(wc -l < "$WORK/items.txt") items"
# Their path-segment forms, for curl (RFC 3986: unreserved characters as they are, others %XX).
for f in users items; do
  python3 -c 'import sys, urllib.parse; [print(urllib.parse.quote(l.rstrip("\n"), safe="-._~")) for l in sys.stdin]' \
    < "$WORK/$f.txt" > "$WORK/$f.enc"
done

# lua FILE COUNT EXPR: a wrk script that builds COUNT requests once in init() (as lib.sh's
# write_requests does) from EXPR, which may call u() (a random trained uid, percent-encoded),
# i() (a random item, percent-encoded for a query), item() (one as it is, for a JSON body) and
# k (the request's index); COUNT 0 means one request per user.
lua() {
  cat > "$1" <<LUAEOF
local reqs, n, count = {}, 0, $2
local function enc(s) return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)) end
local function read(path) local t = {} for line in io.lines(path) do t[#t + 1] = line end return t end
init = function(args)
  math.randomseed(7)
  local users, items = read("$WORK/users.txt"), read("$WORK/items.txt")
  if count == 0 then count = #users end
  local function u() return enc(users[math.random(#users)]) end
  local function item() return items[math.random(#items)] end
  local function i() return enc(item()) end
  for k = 1, count do reqs[k] = $3 end
end
request = function() n = n % count + 1; return reqs[n] end
LUAEOF
}
lua "$WORK/warmup.lua" 0 'wrk.format("GET", "/v1/models/'$MODEL'/users/" .. enc(users[k]))'
# wrk runs for its whole -d: the warm-up ends itself once every user's request has been answered
# (and the CONNECTIONS after it, so none of the first round is still in flight).
cat >> "$WORK/warmup.lua" <<LUAEOF
local answers, refused = 0, 0
response = function(status)
  answers = answers + 1
  if status ~= 200 then refused = refused + 1 end
  if answers >= count + $CONNECTIONS then
    io.write(string.format("visited %d users: %d answers, %d not 200\n", count, answers, refused))
    io.flush()
    os.exit(0)
  end
end
LUAEOF
lua "$WORK/predict.lua" 20000 'wrk.format("GET", "/v1/models/'$MODEL'/users/" .. u() .. "/predict?item=" .. i())'
lua "$WORK/observe.lua" 20000 'wrk.format("POST", "/v1/models/'$MODEL'/users/" .. u() .. "/observe", {["Content-Type"]="application/json"}, "{\"item\":\"" .. item() .. "\",\"label\":" .. math.random(1, 5) .. "}")'

# ticks PID...: CPU time (user + system, in clock ticks) of the processes, with the time of
# their children that they have waited for (the postmaster's exited backends).
ticks() {
  local pid total=0 t
  for pid in "$@"; do
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo $total
}
# PostgreSQL's processes: the postmaster and its children (backends, writer, WAL writer, ...).
pg_pids() { echo "$POSTMASTER" $(ps -o pid= --ppid "$POSTMASTER"); }
# machine_ticks: "busy total" clock ticks of all cores since boot (/proc/stat; idle and iowait idle).
machine_ticks() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat; }
# cores TICKS TOTAL: TICKS of CPU time as cores used on average over an interval in which all the
# cores together counted TOTAL ticks (so over the interval's wall time, not the nominal duration).
cores() { echo "scale=2; $1 * $CORES / $2" | bc | sed 's/^\./0./'; }

# start_serve NAME PORT [serve options...]: starts `osprey serve --store` on 127.0.0.1:PORT,
# tracked by PID (SERVE_PIDS), and waits until it answers /healthz.
# track PID: stopped (SIGTERM, waited for) by stop_all and at exit; track_pid sets its own exit
# trap, so ours (which also stops PostgreSQL) is set again.
track() {
  track_pid "$1"
  trap cleanup EXIT
}
SERVE_PIDS=()
start_serve() {
  local name=$1 port=$2
  shift 2
  $BIN serve --store "$URL" --port "$port" --log-level ${LOG_LEVEL:-warning} \
    --snapshot-observations "${SNAPSHOT:-100000}" --prediction-cache "${CACHE:-0}" ${SERVE_OPTIONS:-} "$@" > "$WORK/$name.log" 2>&1 &
  local pid=$!
  track $pid
  SERVE_PIDS+=($pid)
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
    kill -0 $pid 2>/dev/null || { echo "$name exited:"; tail -20 "$WORK/$name.log"; exit 1; }
    sleep 0.2
  done
  echo "$name did not come up on port $port"; tail -20 "$WORK/$name.log"; exit 1
}
# stop_all: SIGTERM to every started process (nodes leave the ring gracefully), and wait.
stop_all() {
  stop_started
  SERVE_PIDS=()
  HAPROXY_PID=
}
# wait_served PORT: until GET user info of 64 trained users answers 200 on PORT (through
# HAProxy: every node has taken its buckets after the handover delay).
wait_served() {
  local began=$(date +%s.%N) uid ok
  for _ in $(seq 1 300); do
    ok=1
    while read -r uid; do
      curl -sf -o /dev/null "http://127.0.0.1:$1/v1/models/$MODEL/users/$uid" || { ok=0; break; }
    done < <(awk -v step=$(( ($(wc -l < "$WORK/users.enc") + 63) / 64 )) '(NR - 1) % step == 0' "$WORK/users.enc")
    if [ $ok = 1 ]; then echo "   every sampled user served after $(echo "$(date +%s.%N) - $began" | bc) s"; return; fi
    if [ -n "${HAPROXY_PID:-}" ] && ! kill -0 "$HAPROXY_PID" 2>/dev/null; then echo "HAProxy exited:"; cat "$WORK"/haproxy-*.log; exit 1; fi
    sleep 0.2
  done
  echo "users not served through port $1 after 60 s"; exit 1
}
# diagnose PORT ENDPOINT: the answers to 50 of the run's requests, by status, and one non-2xx body.
diagnose() {
  local port=$1 ep=$2 uid item raw
  echo "   non-2xx answers: 50 of the same requests again, by status:"
  for k in $(seq 1 50); do
    uid=$(shuf -n1 "$WORK/users.enc"); read -r raw item < <(paste -d' ' "$WORK/items.txt" "$WORK/items.enc" | shuf -n1)
    if [ "$ep" = predict ]; then
      curl -s -o "$WORK/body" -w '%{http_code}\n' "http://127.0.0.1:$port/v1/models/$MODEL/users/$uid/predict?item=$item"
    else
      curl -s -o "$WORK/body" -w '%{http_code}\n' -H 'Content-Type: application/json' \
        -d "{\"item\":\"$raw\",\"label\":3}" "http://127.0.0.1:$port/v1/models/$MODEL/users/$uid/observe"
    fi
    case $(tail -c 200 "$WORK/body") in *'"error"'*) cp "$WORK/body" "$WORK/error-body" ;; esac
  done | sort | uniq -c | sed 's/^/     /'
  [ -f "$WORK/error-body" ] && echo "     e.g. $(head -c 300 "$WORK/error-body")" && rm -f "$WORK/error-body"
  return 0
}

ROWS=()
WARMED=()
NOISY=0
# measure SETUP PORT: warm-up, then predict and observe with wrk against PORT; one table row each.
measure() {
  local setup=$1 port=$2 ep out rps p50 p99 non2xx sockerr m0 m1 o0 o1 h0 h1 p0 p1 w
  local began=$(date +%s.%N) took
  wrk -t1 -c"$CONNECTIONS" -d"${WARMUP_MAX}s" -s "$WORK/warmup.lua" "http://127.0.0.1:$port" > "$WORK/warmup.out"
  took=$(printf '%.1f' "$(echo "$(date +%s.%N) - $began" | bc)")
  if grep -q '^visited' "$WORK/warmup.out"; then
    WARMED+=("- $setup: $(grep '^visited' "$WORK/warmup.out") in $took s")
  else
    WARMED+=("- $setup: **not every user visited** in $WARMUP_MAX s ($(awk '/requests in/ {print $1}' "$WORK/warmup.out") requests)")
  fi
  echo "   warm-up${WARMED[-1]#- $setup}"
  for ep in predict observe; do
    out=$WORK/$ep.out
    m0=$(machine_ticks); o0=$(ticks "${SERVE_PIDS[@]}"); h0=$(ticks ${HAPROXY_PID:-}); p0=$(ticks $(pg_pids))
    # bash's `time` gives wrk's own CPU seconds.
    { TIMEFORMAT='%U %S'; time wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/$ep.lua" \
        "http://127.0.0.1:$port" > "$out"; } 2> "$WORK/wrk.time"
    m1=$(machine_ticks); o1=$(ticks "${SERVE_PIDS[@]}"); h1=$(ticks ${HAPROXY_PID:-}); p1=$(ticks $(pg_pids))
    read -r rps p50 p99 _ < <(wrk_summary "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
    sockerr=$(awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out"); sockerr=${sockerr:-0}
    w=$(tail -1 "$WORK/wrk.time" | awk -v hz="$HZ" '{ printf "%d", ($1 + $2) * hz }')
    local busy=$(( ${m1% *} - ${m0% *} )) total=$(( ${m1#* } - ${m0#* } ))
    local ours=$(( (o1 - o0) + (h1 - h0) + (p1 - p0) + w ))
    local rest=$(( busy - ours )); [ $rest -lt 0 ] && rest=0
    local row="| $setup | $ep | $rps | $p50 | $p99 | $non2xx | $sockerr | $(cores $((o1 - o0)) $total) | $(
      [ -n "${HAPROXY_PID:-}" ] && cores $((h1 - h0)) $total || echo –) | $(cores $((p1 - p0)) $total) | $(
      cores "$w" $total) | $(cores $rest $total) | $(cores $((total - busy)) $total) |"
    ROWS+=("$row")
    [ $(( rest * CORES * 10 )) -gt "$total" ] && NOISY=1  # others used over 0.1 core
    echo "   $row"
    if [ "$non2xx" != 0 ] || [ "$sockerr" != 0 ]; then diagnose "$port" "$ep"; fi
  done
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== lone: serve --store (no --node, no HAProxy)"
start_serve lone "$PORT"
measure "lone \`serve --store\`" "$PORT"
stop_all

for n in $NODES; do
  echo "== $n node$([ "$n" = 1 ] || echo s)"
  nodes=()
  for k in $(seq 1 "$n"); do
    start_serve "n$k" $((PORT + k)) --node "n$k"
    nodes+=(--node "n$k=127.0.0.1:$((PORT + k))")
  done
  if [ "$n" = 1 ]; then
    echo "-- n1 direct (no HAProxy)"
    wait_served $((PORT + 1))
    measure "1 node, direct" $((PORT + 1))
  fi
  $BIN router-config "${nodes[@]}" --bind "127.0.0.1:$FRONT" --out "$WORK/haproxy-$n.cfg"
  haproxy -f "$WORK/haproxy-$n.cfg" -db > "$WORK/haproxy-$n.log" 2>&1 &
  HAPROXY_PID=$!
  track $HAPROXY_PID
  echo "-- through HAProxy"
  wait_served "$FRONT"
  measure "$n node$([ "$n" = 1 ] || echo s), HAProxy" "$FRONT"
  stop_all
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

pg_version=$("$PGBIN/postgres" --version 2>/dev/null || echo "PostgreSQL (version unknown)")
{
  echo "# Cluster throughput: a lone server, 1 node direct, $(echo $NODES | sed 's/ /, /g') nodes through HAProxy ($(date +%F))"
  echo
  echo "\`bench/cluster.sh\` at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift || echo +changes)."
  echo "Machine: $CORES cores, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2}'),"
  echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM; $pg_version; $(haproxy -v | head -1 | cut -d' ' -f1-3);"
  echo "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2). Load average at start $LOAD_START, at end $LOAD_END."
  echo
  echo "Model: \`osprey generate --users $USERS --items $ITEMS --ratings $RATINGS --dim 10 --noise 0.5 --seed 1\`,"
  echo "trained into a throwaway PostgreSQL (fsync and synchronous_commit on) with d=$DIM. Servers:"
  echo "\`serve --store\` (nodes with \`--node nK\`, default heartbeat 1 s), default event loops (half the"
  echo "cores), prediction cache ${CACHE:-0}, snapshots every ${SNAPSHOT:-100000} observations${SERVE_OPTIONS:+, \`$SERVE_OPTIONS\`}. Each setup"
  echo "started fresh, warmed up by visiting every user once in turn (below), then wrk -t1 -c$CONNECTIONS -d${DURATION}s:"
  echo "predict (GET, random trained user and item), durable observe (POST, random user, item, label 1–5)."
  echo
  echo "CPU columns are cores used on average over the run (CPU seconds / the run's wall time, from /proc): osprey is"
  echo "all serve processes, postgres the postmaster and its backends, rest the machine's other busy time"
  echo "(processes not of the setup). On $CORES cores the nodes, HAProxy, PostgreSQL and wrk"
  echo "share the same cores, so adding nodes cannot add throughput here: the sum of the CPU columns"
  echo "and idle is $CORES (to rounding)."
  if [ $NOISY = 1 ]; then
    echo
    echo "**The machine was not quiet**: other processes (the rest column) used over 0.1 core during"
    echo "some runs, so these numbers understate what the setups do on a quiet machine."
  fi
  echo
  echo "| setup | endpoint | req/s | p50 ms | p99 ms | non-2xx | socket errors | osprey | haproxy | postgres | wrk | rest | idle |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Warm-up, GET user info of each of the trained users once, in order, wrk -t1 -c$CONNECTIONS (a node"
  echo "adopts each user from PostgreSQL on its first request):"
  echo
  printf '%s\n' "${WARMED[@]}"
} > "$OUT"
echo
cat "$OUT"
echo
echo "written to $OUT"
