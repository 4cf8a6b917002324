#!/usr/bin/env bash
# A longer fuzzing campaign: the property-based tests of tests/fuzz with the "long" hypothesis profile (2000 examples
# per test; HYPOTHESIS_PROFILE=ci is what the test suite runs). Extra arguments go to pytest, e.g. `-k graphql`.
# `-k agreement` runs only the filter campaign (format.filter's Python vs SQLite vs PostgreSQL, which joins in when
# ML_DASH_TEST_POSTGRES is set, as scripts/services.sh prints it).
# A failure prints the shrunk example and a @reproduce_failure(...) line to paste onto the test.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-long}"
exec "$PYTHON" -m pytest -q -p no:cacheprovider -o timeout=0 tests/fuzz "$@"
