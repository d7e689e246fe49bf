#!/usr/bin/env bash
# Installs the Debian tools scripts/durability-test.py needs, when missing: strace (the order of
# fsyncs and answers) and gcc (its LD_PRELOAD control). Idempotent; apt-get runs only when one is
# missing (as root).
#
#   bash scripts/install-test-tools.sh
set -euo pipefail
missing=()
for tool in strace gcc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-tools: strace and gcc present"
  exit 0
fi
echo "install-test-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"
