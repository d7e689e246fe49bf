#!/usr/bin/env bash
# Runs .build/debug/osprey (or $OSPREY_BINARY) with items learning online, tiny hot tiers of
# users and items and frequent snapshots when it serves, so snapshots of users and items at one
# cut are under way all the time and items go cold and are read back: `.ci/run` passes this
# script to scripts/crash-test.py as the binary, to check that SIGKILL recovery stays exact with
# item updates (docs/architecture.md, "Items learn online").
root="$(cd "$(dirname "$0")/.." && pwd)"
binary="${OSPREY_BINARY:-$root/.build/debug/osprey}"
if [ "${1:-}" = serve ]; then exec "$binary" "$@" --item-updates on --hot-users 4 --hot-items 4 --snapshot-observations 40; fi
exec "$binary" "$@"
