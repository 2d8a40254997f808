#!/usr/bin/env bash
# A venv of its own for Databricks Connect, which replaces pyspark and so cannot share .venv: Python 3.12
# (databricks-connect 19 requires it), databricks-connect, and this package with its Databricks extra but
# without its Spark one. The Databricks Connect test runs `dbnd` from it.
#   bash scripts/install-dbconnect.sh            -> .venv-dbconnect (reinstalled only when pyproject.toml changed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DBC_VENV="${DBC_VENV:-$ROOT/.venv-dbconnect}"
DBC_VERSION="19.3.0"
export PIP_DISABLE_PIP_VERSION_CHECK=1
key="$(cat "$ROOT/pyproject.toml" <(echo "$DBC_VERSION") | sha256sum | cut -c1-16)"
stamp="$DBC_VENV/.dbnd-installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$key" ]]; then
    exit 0
fi
python312=""
for candidate in python3.12 $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python 2>/dev/null | sort -rV); do
    if "$candidate" -c "import sys, venv; assert sys.version_info[:2] == (3, 12)" 2>/dev/null; then
        python312="$candidate"  # a pyenv shim without 3.12 selected fails this and is passed over
        break
    fi
done
if [[ -z "$python312" ]]; then
    echo "install-dbconnect: databricks-connect $DBC_VERSION needs Python 3.12, which is not installed" \
         "(python3.12 on PATH or a pyenv 3.12)" >&2
    exit 1
fi
echo "Installing databricks-connect $DBC_VERSION into $DBC_VENV ..." >&2
[[ -x "$DBC_VENV/bin/python" ]] || "$python312" -m venv "$DBC_VENV"
"$DBC_VENV/bin/python" -m pip install -q "databricks-connect==$DBC_VERSION" -e "$ROOT[databricks]" \
    2> >(grep -v "^WARNING: Location" >&2)
"$DBC_VENV/bin/python" -m pip check >/dev/null
echo "$key" > "$stamp"
