#!/usr/bin/env bash
# The whole test suite from a bare machine: venv, system services, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
eval "$(bash scripts/services.sh)"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
