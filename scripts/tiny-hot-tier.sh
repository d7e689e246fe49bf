#!/usr/bin/env bash
# Runs .build/debug/osprey (or $OSPREY_BINARY) with a tiny hot tier and frequent snapshots when it
# serves, so users are evicted and rebuilt all the time, users learning alone (`--item-updates
# off`; scripts/items-online.sh is the same with items learning too): `.ci/run` passes this script
# to scripts/crash-test.py as the binary, to check that SIGKILL recovery stays exact with tiering.
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${OSPREY_BINARY:-$root/.build/debug/osprey}"
if [ "${1:-}" = serve ]; then exec "$binary" "$@" --item-updates off --hot-users 4 --snapshot-observations 40; fi
exec "$binary" "$@"
