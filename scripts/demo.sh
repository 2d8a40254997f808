#!/usr/bin/env bash
# Install dbnd-prefect and run the demo pipeline end to end; the first run starts a local Prefect server
# in the background (run.api = local) that later runs reuse: `dbnd server stop` stops it.
set -euo pipefail
EXTRAS="examples" source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
cd "$ROOT"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
exec "$PY" flows/wine_quality.py "$@"
