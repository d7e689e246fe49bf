#!/usr/bin/env bash
# Installs PySpark (with numpy, which pyspark.ml needs) into a Python venv in the repository,
# .venv-spark/, for scripts/spark-als-export.py and scripts/spark-import-test.py. Idempotent: a
# venv that already imports the pinned version is left as it is. Spark runs on Java (17 works):
# without `java` on the PATH it installs nothing, says so, and exits 3, so a caller can skip
# with that reason. On a fresh Debian machine without the venv module it installs python3-venv
# with apt-get first (as root).
#
#   bash scripts/install-spark.sh      # then: .venv-spark/bin/python -c 'import pyspark'
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC="pyspark==4.3.*"
VENV="${SPARK_VENV:-.venv-spark}"
PYTHON="${PYTHON:-python3}"

if ! command -v java >/dev/null 2>&1; then
  echo "install-spark: no java on the PATH; Spark needs a Java runtime (Debian: openjdk-17-jre-headless)" >&2
  exit 3
fi

installed() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$SPEC" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import numpy, pyspark  # noqa: F401 (both must import)
want = sys.argv[1].split("==")[1].rstrip(".*")
sys.exit(0 if (version("pyspark") + ".").startswith(want + ".") else 1)
PY
}

if installed; then
  echo "pyspark $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("pyspark"))') already in $VENV"
  exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "install-spark: $PYTHON not found" >&2; exit 1; }
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  command -v apt-get >/dev/null || { echo "install-spark: $PYTHON has no venv module and there is no apt-get" >&2; exit 1; }
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  apt-cache show python3-venv >/dev/null 2>&1 || $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
fi

# A venv left half-made by an interrupted run is made again.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SPEC" numpy
echo "installed pyspark $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("pyspark"))') in $VENV"
