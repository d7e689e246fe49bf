#!/usr/bin/env bash
# Installs schemathesis (the OpenAPI contract tester behind scripts/contract-test.sh) into a
# Python venv in the repository, .venv-schemathesis/. Idempotent: a venv that already has the
# pinned version is left as it is. On a fresh Debian machine without the venv module it
# installs python3-venv with apt-get first (as root).
#
#   bash scripts/install-schemathesis.sh      # then: .venv-schemathesis/bin/schemathesis --version
set -euo pipefail
cd "$(dirname "$0")/.."

# The version the contract test was written against (4.x: `schemathesis run ... --checks all`).
SPEC="schemathesis==4.32.*"
VENV="${SCHEMATHESIS_VENV:-.venv-schemathesis}"
PYTHON="${PYTHON:-python3}"

installed() {
  [ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/python" - "$SPEC" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
want = sys.argv[1].split("==")[1].rstrip(".*")
sys.exit(0 if (version("schemathesis") + ".").startswith(want + ".") else 1)
EOF
}

if installed; then
  echo "schemathesis $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("schemathesis"))') already in $VENV"
  exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "install-schemathesis: $PYTHON not found" >&2; exit 1; }

# Debian splits venv and ensurepip out of python3 into python3-venv.
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  command -v apt-get >/dev/null || { echo "install-schemathesis: $PYTHON has no venv module and there is no apt-get" >&2; exit 1; }
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  pkg="python3-venv"
  # Only refresh the package lists when the package is unknown to them.
  apt-cache show "$pkg" >/dev/null 2>&1 || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg"
fi

# A venv left half-made by an interrupted run is made again.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SPEC"
echo "installed $("$VENV/bin/schemathesis" --version) in $VENV"
