#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, start `ml-dash server` on 127.0.0.1, log runs to it, query them back.
# Extra arguments go to examples/remote_demo.py (e.g. --keep to leave the server running for the dashboard).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/remote_demo.py "$@"
