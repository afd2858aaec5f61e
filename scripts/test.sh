#!/usr/bin/env bash
# Set up (dev extras: PostgreSQL driver, the pgserver wheel, pytest) and run every test
# on both backends. The tests start a throwaway PostgreSQL with pgvector themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# Headless Chromium renders the `report --html` page in tests/reconcile/test_report.py.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq chromium >/dev/null
  else
    echo "scripts/test.sh: install Chromium (chromium) for the report test" >&2
  fi
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
