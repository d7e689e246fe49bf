# Shared by the bench scripts, sourced from the repository root under `set -euo pipefail`.

# apt_install PACKAGE...: installs Debian packages, reading the package lists first when they
# are missing (a fresh machine has none, and `apt-get install` then finds nothing).
apt_install() {
  echo "== installing $* (Debian)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null 2>&1; then
    apt-get update >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >/dev/null
  fi
}

# Installs wrk when it is missing.
require_wrk() {
  command -v wrk >/dev/null || apt_install wrk
}

# Builds the release binary and sets BIN to it; with OSPREY_BIN set, uses that binary instead
# (for an A/B of two builds in one period).
build_release() {
  if [ -n "${OSPREY_BIN:-}" ]; then BIN=$OSPREY_BIN; return; fi
  swift build -c release --product osprey >/dev/null
  BIN=.build/release/osprey
}

# Processes the script started, stopped by their PIDs (TERM, then waited for) when it exits;
# AWAITED: processes their parents stop (uvicorn's workers), waited for after STARTED.
STARTED=()
AWAITED=()
stop_started() {
  local pid
  for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  # Not our children, so not wait-able: give each up to 10 s, then TERM it.
  for pid in "${AWAITED[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -TERM "$pid" 2>/dev/null || true
  done
  STARTED=()
  AWAITED=()
}
# track_pid PID: stops PID when the script exits (also on an error, Ctrl-C or TERM).
track_pid() {
  STARTED+=("$1")
  trap stop_started EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
# untrack_pid PID: PID was stopped and waited for by the script itself; forget it.
untrack_pid() {
  local pid kept=()
  for pid in "${STARTED[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  STARTED=(${kept[@]+"${kept[@]}"})
}
# await_pid PID...: children of a tracked process that it stops itself; waited for on exit.
await_pid() {
  AWAITED+=("$@")
}

# prepare_model USERS ITEMS RATINGS DIM: generates ratings and trains model `bench` on them
# once per size, cached in .bench-data/; sets DATA to its data directory.
prepare_model() {
  local users=$1 items=$2 ratings=$3 dim=$4
  DATA=.bench-data/u${users}-i${items}-r${ratings}-d${dim}
  mkdir -p "$DATA"
  if [ ! -f "$DATA/osprey.sqlite" ]; then
    $BIN generate --users "$users" --items "$items" --ratings "$ratings" --dim 10 --noise 0.5 --seed 1 --out "$DATA/ratings.csv"
    if ! /usr/bin/time -f "train: %e s, peak RSS %M KiB" $BIN train --data-dir "$DATA" --model bench \
        --ratings "$DATA/ratings.csv" --dim "$dim" --lambda 0.1 --scale-lambda --iterations 5 2> "$DATA/train.log"; then
      tail -20 "$DATA/train.log"; rm -f "$DATA/osprey.sqlite"*; echo "training failed"; exit 1
    fi
    grep -vE "iteration [0-9]+/" "$DATA/train.log"
  fi
}

# fresh_copy DIR: DIR emptied, then given a copy of the prepared model's stores ($DATA's), so a
# run that changes them leaves the cached model as it was.
fresh_copy() {
  local f
  rm -rf "$1"; mkdir -p "$1"
  for f in "$DATA"/*.sqlite "$DATA"/*.sqlite-wal; do [ ! -e "$f" ] || cp "$f" "$1"/; done
}

# start_server DATA PORT [serve options...]: starts `osprey serve` on 127.0.0.1, stops it (by its
# PID, in PID) when the script exits, and waits until it answers /healthz.
start_server() {
  local data=$1 port=$2
  shift 2
  $BIN serve --data-dir "$data" --port "$port" --log-level ${LOG_LEVEL:-warning} "$@" &
  PID=$!
  track_pid $PID
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.2; done
  echo "the server did not come up on port $port"; exit 1
}

# rss_kib PID...: the summed resident set size of the processes, in KiB.
rss_kib() {
  local pid total=0
  for pid in "$@"; do total=$((total + $(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0))); done
  echo $total
}

# write_requests FILE LUA_EXPRESSION [COUNT]: a wrk script that builds COUNT (20,000) requests
# once in init() from the expression (re-evaluated for each, so random parts differ) and cycles
# through them, so wrk's own Lua string building does not become the bottleneck on this 2-core
# machine.
write_requests() {
  cat > "$1" <<LUAEOF
local reqs, n, count = {}, 0, ${3:-20000}
init = function(args)
  math.randomseed(7)
  for i = 1, count do reqs[i] = $2 end
end
request = function() n = n % count + 1; return reqs[n] end
LUAEOF
}

# wrk_summary FILE: "requests/s p50_ms p99_ms errors" from the output of `wrk --latency`
# (errors: non-2xx responses plus socket errors).
wrk_summary() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v + 0 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { errors += $NF }
    /Socket errors/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors }' "$1"
}

# write_endpoint_requests DIR USERS ITEMS: DIR/{predict,observe,topk}.lua with random users and
# items of bench/http.sh's model (predict, durable observe with a label 1–5, whole-catalogue topk).
write_endpoint_requests() {
  write_requests "$1/predict.lua" \
    'wrk.format("GET", "/v1/models/bench/users/u" .. math.random(0, '"$2"' - 1) .. "/predict?item=i" .. math.random(0, '"$3"' - 1))'
  write_requests "$1/observe.lua" \
    'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, '"$2"' - 1) .. "/observe", {["Content-Type"]="application/json"}, "{\"item\":\"i" .. math.random(0, '"$3"' - 1) .. "\",\"label\":" .. math.random(1, 5) .. "}")'
  write_requests "$1/topk.lua" \
    'wrk.format("POST", "/v1/models/bench/users/u" .. math.random(0, '"$2"' - 1) .. "/topk", {["Content-Type"]="application/json"}, "{\"k\":10}")'
}

# zipf_requests FILE EXPR [COUNT]: COUNT (1,000,000) requests built once from EXPR, which may
# call zu() (a Zipf(1.0) rank over $USERS users), zi() (over $ITEMS items) and candidates(zi) (a
# topk body of 50 such items); wrk's first script argument seeds them (default 7).
zipf_requests() {
  cat > "$1" <<LUAEOF
local reqs, n, count = {}, 0, ${3:-1000000}
local function cdf(size)
  local c, total = {}, 0
  for k = 1, size do total = total + 1 / k; c[k] = total end
  for k = 1, size do c[k] = c[k] / total end
  return c
end
local function candidates(zi)
  local ids = {}
  for j = 1, 50 do ids[j] = "\"i" .. zi() .. "\"" end
  return "{\"k\":10,\"items\":[" .. table.concat(ids, ",") .. "]}"
end
local function draw(c)
  local u, lo, hi = math.random(), 1, #c
  while lo < hi do local mid = math.floor((lo + hi) / 2); if c[mid] < u then lo = mid + 1 else hi = mid end end
  return lo - 1
end
init = function(args)
  math.randomseed(tonumber(args[1]) or 7)
  local users, items = cdf($USERS), cdf($ITEMS)
  local function zu() return draw(users) end
  local function zi() return draw(items) end
  for i = 1, count do reqs[i] = $2 end
end
request = function() n = n % count + 1; return reqs[n] end
LUAEOF
}
