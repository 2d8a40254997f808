# Sourced by the other scripts: make the project venv (.venv) and install the package into it.
#   EXTRAS="test" source scripts/venv.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip >/dev/null
fi
stamp="$VENV/.dbnd-installed-${EXTRAS:-core}"
if [[ ! -f "$stamp" || "$ROOT/pyproject.toml" -nt "$stamp" ]]; then
    echo "Installing dbnd-prefect${EXTRAS:+[$EXTRAS]} into $VENV ..." >&2
    "$PY" -m pip install -q -e "$ROOT${EXTRAS:+[$EXTRAS]}" 2> >(grep -v "^WARNING: Location" >&2)
    touch "$stamp"
fi
export VENV PY ROOT
