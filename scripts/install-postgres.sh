#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries for the Postgres-backed Prefect server test
# (tests/test_server_postgres.py starts its own cluster with initdb/pg_ctl in a temporary folder).
#
#   bash scripts/install-postgres.sh
#
# Idempotent: when initdb is already there it exits at once. Needs root and Debian apt.
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres: PostgreSQL not found and cannot install it here (needs root and apt-get)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get -qq update && apt-get -qq install -y --no-install-recommends postgresql; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-postgres: apt-get install postgresql failed (output above)" >&2
    exit 1
fi
