#!/usr/bin/env bash
# Install a Java runtime (Debian's default-jre-headless) for the Spark tests (local Spark and a Spark Connect
# server, both started by tests/test_spark_engines.py from the pyspark package).
#
#   bash scripts/install-java.sh
#
# Idempotent: when `java` already runs it exits at once. Needs root and Debian apt; where either is missing it
# says so and exits 0, and the Spark tests skip with the reason.
set -euo pipefail

if java -version >/dev/null 2>&1; then
    exit 0
fi
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-java: java not found and cannot install it here (needs root and apt-get);" \
         "the Spark tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { apt-get -qq update && apt-get -qq install -y --no-install-recommends default-jre-headless; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-java: apt-get install default-jre-headless failed (output above)" >&2
    exit 1
fi
java -version >/dev/null 2>&1 || { echo "install-java: java installed but does not run" >&2; exit 1; }
