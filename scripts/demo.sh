#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, start `ml-dash server` on 127.0.0.1, log runs to it, query them back.
# Extra arguments go to examples/remote_demo.py (e.g. --keep: the server stays up until Ctrl-C, and the dashboard
# URL is printed; without it the demo terminates and prints no URL, since its server is gone by then).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/remote_demo.py "$@"
