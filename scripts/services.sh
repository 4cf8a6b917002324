#!/usr/bin/env bash
# System services the full test suite uses: PostgreSQL 15 (storage tests) and Debian's Chromium (dashboard tests).
# Installs them with apt-get when absent (needs root), starts PostgreSQL and creates the test database.
# Prints the variables to export, e.g.:  eval "$(bash scripts/services.sh)"
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v pg_ctlcluster >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium chromium-driver)
command -v node >/dev/null 2>&1 || need+=(nodejs)  # the dashboard's JS unit tests (node --test)
if [ ${#need[@]} -gt 0 ]; then
  { apt-get update -qq && apt-get install -y -qq "${need[@]}"; } >&2 || echo "services: could not install ${need[*]}" >&2
fi
if command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
  if [ -n "$version" ]; then
    pg_ctlcluster "$version" main start >&2 2>&1 || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
    # peer authentication over the Unix socket: no password prompt, also without a terminal
    su postgres -c "psql -w -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='ml_dash'\" | grep -q 1 || psql -w -q -c \"CREATE ROLE ml_dash LOGIN SUPERUSER PASSWORD 'ml_dash'\"" >&2 || true
    su postgres -c "psql -w -q -tc \"SELECT 1 FROM pg_database WHERE datname='ml_dash_test'\" | grep -q 1 || createdb -O ml_dash ml_dash_test" >&2 || true
    if pg_isready -q -h 127.0.0.1; then
      echo "export ML_DASH_TEST_POSTGRES=postgresql://ml_dash:ml_dash@127.0.0.1:5432/ml_dash_test"
    fi
  fi
fi
[ -x /usr/bin/chromium ] && echo "export ML_DASH_TEST_CHROMIUM=/usr/bin/chromium"
exit 0
