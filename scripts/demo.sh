#!/usr/bin/env bash
# Install dbnd-prefect and run the demo pipeline end to end on Prefect's embedded (ephemeral) API.
set -euo pipefail
EXTRAS="examples" source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
cd "$ROOT"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
exec "$PY" flows/wine_quality.py "$@"
