#!/usr/bin/env bash
# Install Debian's chromium, the browser tests/test_ui_browser.py drives with Playwright for Python
# (which never downloads a browser of its own here: the test passes `executable_path=shutil.which("chromium")`).
#
#   bash scripts/install-chromium.sh
#
# Idempotent: when chromium is already on PATH it exits at once. Needs root and Debian apt; where either is
# missing it says so and exits 0, and the browser test skips with the reason.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-chromium: chromium not found and cannot install it here (needs root and apt-get);" \
         "the browser test will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get -qq update && apt-get -qq install -y --no-install-recommends chromium fonts-liberation; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-chromium: apt-get install chromium failed (output above)" >&2
    exit 1
fi
command -v chromium >/dev/null || { echo "install-chromium: chromium installed but not on PATH" >&2; exit 1; }
