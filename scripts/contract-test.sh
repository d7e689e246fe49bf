#!/usr/bin/env bash
# Contract test: openapi.yaml against a live server, with schemathesis (--checks all).
#
#   bash scripts/contract-test.sh [OSPREY_BINARY]      # default .build/debug/osprey
#
# Builds nothing: it takes an osprey binary, trains a small model in a temporary data
# directory, serves it on 127.0.0.1 on a free port, runs schemathesis against the server's own
# /openapi.yaml and stops the server it started (by its PID) on exit. Prints schemathesis'
# summary and exits non-zero if schemathesis reports any failure or error.
# schemathesis comes from scripts/install-schemathesis.sh.
#
# Environment:
#   SCHEMATHESIS            the schemathesis executable (default .venv-schemathesis/bin/schemathesis)
#   CONTRACT_MAX_EXAMPLES   test cases per operation and phase (default 150)
#   CONTRACT_TIMEOUT        seconds schemathesis may run before it is stopped (default 150)
#   CONTRACT_KEEP=1         keep the temporary directory (data, server log, reports)
#   CONTRACT_TOKENS=1       serve with an access token (--tokens-file, role admin) and send it
#                           with every request (docs/operations.md, "Access tokens")
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-.build/debug/osprey}"
SCHEMATHESIS="${SCHEMATHESIS:-.venv-schemathesis/bin/schemathesis}"
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-150}"
TIME_LIMIT="${CONTRACT_TIMEOUT:-150}"
HOST=127.0.0.1
MODEL=demo

[ -x "$BIN" ] || { echo "contract-test: no osprey binary at $BIN (swift build --product osprey)" >&2; exit 2; }
[ -x "$SCHEMATHESIS" ] || { echo "contract-test: no schemathesis at $SCHEMATHESIS (bash scripts/install-schemathesis.sh)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/osprey-contract.XXXXXX")"
SERVER_PID=""

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # A graceful stop snapshots the model; give it 15 s, then SIGKILL.
    for _ in $(seq 150); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

cleanup() {
  local rc=$?
  stop_server
  if [ "${CONTRACT_KEEP:-0}" = 1 ]; then
    echo "contract-test: kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A small model: trained in well under a second, so a retrain (which schemathesis asks for,
# with "wait": true among others) is quick too.
"$BIN" generate --users 60 --items 40 --ratings 900 --dim 4 --seed 7 --out "$WORK/ratings.csv" >/dev/null
"$BIN" train --data-dir "$WORK/data" --model "$MODEL" --ratings "$WORK/ratings.csv" \
  --dim 4 --iterations 3 --lambda 0.1 >"$WORK/train.log" 2>&1 \
  || { cat "$WORK/train.log" >&2; echo "contract-test: training failed" >&2; exit 1; }

# With CONTRACT_TOKENS=1, one admin token, written to a file only this user can read.
SERVE_AUTH=()
SCHEMATHESIS_AUTH=()
if [ "${CONTRACT_TOKENS:-0}" = 1 ]; then
  TOKEN="contract-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  (umask 077; printf '# contract test\nadmin %s\n' "$TOKEN" >"$WORK/tokens")
  SERVE_AUTH=(--tokens-file "$WORK/tokens")
  SCHEMATHESIS_AUTH=(--header "Authorization: Bearer $TOKEN")
fi

# Start the server; retry on another port if the free one was taken meanwhile.
PORT=""
for attempt in 1 2 3; do
  port="$(free_port)"
  "$BIN" serve --data-dir "$WORK/data" --host "$HOST" --port "$port" --log-level warning "${SERVE_AUTH[@]}" \
    >"$WORK/serve.log" 2>&1 </dev/null &
  SERVER_PID=$!
  for _ in $(seq 300); do
    if curl -fsS -o /dev/null --max-time 1 "http://$HOST:$port/healthz" 2>/dev/null; then
      PORT="$port"
      break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$PORT" ] && break
  stop_server
  if ! grep -qiE "address already in use|EADDRINUSE" "$WORK/serve.log"; then
    cat "$WORK/serve.log" >&2
    echo "contract-test: the server did not become healthy (attempt $attempt)" >&2
    exit 1
  fi
done
[ -n "$PORT" ] || { echo "contract-test: no free port after 3 attempts" >&2; exit 1; }
BASE="http://$HOST:$PORT"
echo "contract-test: osprey serve (pid $SERVER_PID) on $BASE, model $MODEL${SERVE_AUTH:+, with an access token}"

# Deterministic generation (which also keeps no example database), so each run sends the same
# cases and CI does not flake on a rare one; no colours in CI logs. Every check but
# `use_after_free`: it expects a GET after a DELETE to be 404, but a user exists implicitly (any
# uid is served, an unseen or erased one bootstrapped from the mean weights; openapi.yaml's
# `getUser` and `deleteUser`), so GET /users/{uid} after an erasure is 200 by design.
set +e
timeout --kill-after=10 "$TIME_LIMIT" "$SCHEMATHESIS" --no-color --config-file scripts/schemathesis.toml \
  run "$BASE/openapi.yaml" \
  --url "$BASE" \
  --checks all \
  --exclude-checks use_after_free \
  --max-examples "$MAX_EXAMPLES" \
  --generation-deterministic \
  --request-timeout 30 \
  "${SCHEMATHESIS_AUTH[@]}" \
  --report "${CONTRACT_REPORTS:-junit}" --report-dir "$WORK/report" \
  2>&1 | tee "$WORK/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "contract-test: schemathesis did not finish within ${TIME_LIMIT}s" >&2
  exit 1
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  tail -n 200 "$WORK/serve.log" >&2
  kept="${TMPDIR:-/tmp}/osprey-contract-serve-$$.log"
  cp "$WORK/serve.log" "$kept"
  echo "contract-test: the server exited during the run (its whole log: $kept)" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "contract-test: FAILED (schemathesis exit code $rc); server log tail:" >&2
  tail -n 200 "$WORK/serve.log" >&2
  exit 1
fi
echo "contract-test: passed"
