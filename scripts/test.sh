#!/usr/bin/env bash
# Install everything the tests need (Python packages, storage emulators, docker.io, chromium) and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k targets`.
set -euo pipefail
EXTRAS="examples,test" source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
cd "$ROOT"
VENV="$VENV" bash scripts/install-emulators.sh
bash scripts/install-docker.sh      # Debian's docker.io: a private dockerd runs the Docker work-pool test
bash scripts/install-chromium.sh    # Debian's chromium for the Prefect UI browser test
bash scripts/install-java.sh        # a Java runtime for local Spark and the Spark Connect server
bash scripts/install-postgres.sh    # Debian's postgresql: a Postgres-backed Prefect server test
"$PY" -m pip check >/dev/null || { "$PY" -m pip check; exit 1; }
"$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache  # the import contract (pyproject.toml)
export DBND_TEST_REQUIRE_ENGINES=1  # dockerd and chromium tests fail, never skip, when their engine cannot run
# databricks-connect in .venv-dbconnect (Python 3.12) for the Databricks Connect test, installed while the suite
# runs (that test waits for it); the suite's status is the command's, once the install has ended too
mkdir -p "$ROOT/.cache"
bash scripts/install-dbconnect.sh > "$ROOT/.cache/install-dbconnect.log" 2>&1 &
export DBND_TEST_DBCONNECT_INSTALL="$!:$ROOT/.cache/install-dbconnect.log"
status=0
"$PY" -m pytest -q -n 4 --dist loadfile --no-loadscope-reorder "$@" || status=$?  # slow files first (tests/conftest.py)
wait "${DBND_TEST_DBCONNECT_INSTALL%%:*}" || true
exit "$status"
