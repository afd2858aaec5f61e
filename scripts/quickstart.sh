#!/usr/bin/env bash
# The main job on the embedded default: set up, then reconcile the shipped sample corpus
# (48 PubMed Central articles) into a SQLite store with the real all-MiniLM-L6-v2 model.
# Everything lands in demo/ (ignored by git); run it again to see a no-op reconcile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
mkdir -p demo
if [ ! -d demo/corpus ]; then
  cp -r samples/pmc demo/corpus
fi
if [ ! -f demo/ragstate.yaml ]; then
  .venv/bin/ragstate init --source demo/corpus --store sqlite:///demo/ragstate.db --output demo/ragstate.yaml
fi
.venv/bin/ragstate reconcile -c demo/ragstate.yaml
.venv/bin/ragstate status -c demo/ragstate.yaml
