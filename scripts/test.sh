#!/usr/bin/env bash
# Set up (dev extras: PostgreSQL driver, the pgserver wheel, pytest) and run every test
# on both backends. The tests start a throwaway PostgreSQL with pgvector themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
