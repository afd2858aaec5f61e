#!/usr/bin/env bash
# The main job on the embedded default: set up, then reconcile the shipped sample corpus
# (48 PubMed Central articles) into a SQLite store with the real all-MiniLM-L6-v2 model.
# Then a mixed folder (samples/mixed: a PDF, a Word file, a web page) into a second store,
# and a query whose answer cites its page and section. Everything lands in demo/ (ignored by
# git); run it again to see a no-op reconcile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh pdf,html,docx
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
if [ ! -d demo/mixed ]; then
  cp -r samples/mixed demo/mixed
fi
if [ ! -f demo/mixed.yaml ]; then
  .venv/bin/ragstate init --source demo/mixed --store sqlite:///demo/mixed.db --pipelines noderag --output demo/mixed.yaml
fi
.venv/bin/ragstate reconcile -c demo/mixed.yaml
.venv/bin/ragstate query noderag "licensing of retail sales of alcohol and gambling" -k 2 -c demo/mixed.yaml
