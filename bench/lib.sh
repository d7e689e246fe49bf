# Shared by the bench scripts, sourced from the repository root under `set -euo pipefail`.

# Stops with a hint when wrk is not installed.
require_wrk() {
  command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk"; exit 1; }
}

# Builds the release binary and sets BIN to it.
build_release() {
  swift build -c release --product osprey >/dev/null
  BIN=.build/release/osprey
}

# start_server DATA PORT [serve options...]: starts `osprey serve` on 127.0.0.1, stops it (by its
# PID, in PID) when the script exits, and waits until it answers /healthz.
start_server() {
  local data=$1 port=$2
  shift 2
  $BIN serve --data-dir "$data" --port "$port" --log-level warning "$@" &
  PID=$!
  trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.2; done
  echo "the server did not come up on port $port"; exit 1
}

# write_requests FILE LUA_EXPRESSION: a wrk script that builds 20,000 requests once in init()
# from the expression (re-evaluated for each, so random parts differ) and cycles through them,
# so wrk's own Lua string building does not become the bottleneck on this 2-core machine.
write_requests() {
  cat > "$1" <<LUAEOF
local reqs, n, count = {}, 0, 20000
init = function(args)
  math.randomseed(7)
  for i = 1, count do reqs[i] = $2 end
end
request = function() n = n % count + 1; return reqs[n] end
LUAEOF
}
