#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for tests and benchmarks, in a directory of its own.
#
#   scripts/postgres-server.sh start DIR [PORT]   initdb in DIR/data (once), start, print the URL
#   scripts/postgres-server.sh stop DIR           stop it (fast shutdown)
#   scripts/postgres-server.sh url DIR            print the URL of a started server
#
# With OWNER_PID set, `start` also leaves a watcher that stops the server and removes DIR once
# that process is gone (the test process that started it, however it ended).
#
# The server listens on a unix socket in DIR and, when PORT is given, on 127.0.0.1:PORT. It trusts
# local connections (user `osprey`, database `postgres`) and commits with its defaults: fsync on,
# synchronous_commit on. As root it runs as the `postgres` user (initdb refuses root), which
# scripts/install-postgres.sh creates with the server's Debian package. Settings are in
# docs/operations.md ("PostgreSQL").
set -euo pipefail

command=${1:?usage: postgres-server.sh start|stop|url DIR [PORT]}
dir=${2:?usage: postgres-server.sh start|stop|url DIR [PORT]}
port=${3:-}

bin=$(pg_config --bindir 2>/dev/null || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bin=$candidate
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "postgres-server.sh: no PostgreSQL server binaries (initdb); run scripts/install-postgres.sh" >&2
  exit 3
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() {
  local p
  p=$(cat "$dir/port")
  echo "postgres://osprey@localhost:$p/postgres?host=$dir"
}

case "$command" in
  start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; chmod 755 "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -A trust -U osprey --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # The socket's port number names it (.s.PGSQL.PORT); without TCP any free number will do.
    if [ -z "$port" ]; then listen=""; port=$(( 20000 + RANDOM % 20000 )); else listen="127.0.0.1"; fi
    echo "$port" > "$dir/port"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses='$listen' -c max_connections=200 -c shared_buffers=128MB" start >/dev/null \
      || { cat "$dir/server.log" >&2; exit 1; }
    if [ -n "${OWNER_PID:-}" ]; then
      self=$(readlink -f "$0")
      setsid bash -c "while kill -0 $OWNER_PID 2>/dev/null; do sleep 1; done; bash '$self' stop '$dir'; rm -rf '$dir'" \
        </dev/null >/dev/null 2>&1 &
    fi
    url
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
  url)
    url
    ;;
  *)
    echo "postgres-server.sh: unknown command $command (start, stop, url)" >&2
    exit 2
    ;;
esac
