#!/usr/bin/env bash
# Installs the Debian tools the tests need, when missing: strace (scripts/durability-test.py: the
# order of fsyncs and answers), gcc (its LD_PRELOAD control), openssl (the certificates of
# TLSTests and scripts/cli-test.py's TLS cases), the PostgreSQL 15 server (the store tests'
# `postgres` backend, started by scripts/postgres-server.sh) and HAProxy (scripts/router-test.py).
# Idempotent; apt-get runs only when one is missing (as root).
#
#   bash scripts/install-test-tools.sh
set -euo pipefail
missing=()
for tool in strace gcc openssl haproxy; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing+=(postgresql-15); fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-tools: strace, gcc, openssl, haproxy and PostgreSQL present"
  exit 0
fi
echo "install-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"
