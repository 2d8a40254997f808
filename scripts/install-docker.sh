#!/usr/bin/env bash
# Install the Docker engine (Debian's docker.io) used by tests/test_docker_worker.py.
#
#   bash scripts/install-docker.sh
#
# Idempotent: when dockerd is already on PATH it exits at once. Needs root and Debian apt; where either is
# missing it says so and exits 0, and the Docker tests skip with the reason (the engine cannot start).
set -euo pipefail

if command -v dockerd >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-docker: dockerd not found and cannot install docker.io here (needs root and apt-get);" \
         "the Docker worker tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get -qq update && apt-get -qq install -y --no-install-recommends docker.io; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-docker: apt-get install docker.io failed (output above)" >&2
    exit 1
fi
command -v dockerd >/dev/null || { echo "install-docker: docker.io installed but dockerd is not on PATH" >&2; exit 1; }
