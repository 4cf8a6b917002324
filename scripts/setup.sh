#!/usr/bin/env bash
# Create .venv with ml-dash (editable, with the server and dev extras) and the pinned CPU torch.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -r requirements-dev.txt
.venv/bin/python scripts/fetch_chart_library.py
