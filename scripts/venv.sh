# Sourced by the other scripts: make the project venv (.venv) and install the package into it.
#   EXTRAS="test" source scripts/venv.sh
# The package is (re)installed only when what pip installs changed: the [build-system] and [project] tables
# and the build's file selection ([tool.hatch]), not on every edit of pyproject.toml. A run that installs
# nothing prints nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip >/dev/null
fi
install_key="$("$PY" - "$ROOT/pyproject.toml" "${EXTRAS:-core}" <<'PYEOF'
import hashlib, json, sys
raw = open(sys.argv[1], "rb").read()
try:
    import tomllib
    data = tomllib.loads(raw.decode())
    raw = json.dumps([data.get("build-system"), data.get("project"), data.get("tool", {}).get("hatch")],
                     sort_keys=True).encode()
except Exception:  # Python 3.10 (no tomllib) or a file being edited: the whole file decides
    pass
print(hashlib.sha256(raw + sys.argv[2].encode()).hexdigest()[:16])
PYEOF
)"
stamp="$VENV/.dbnd-installed-${EXTRAS:-core}"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$install_key" ]]; then
    echo "Installing dbnd-prefect${EXTRAS:+[$EXTRAS]} into $VENV ..." >&2
    "$PY" -m pip install -q -e "$ROOT${EXTRAS:+[$EXTRAS]}" 2> >(grep -v "^WARNING: Location" >&2)
    echo "$install_key" > "$stamp"
fi
export VENV PY ROOT
