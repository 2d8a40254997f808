"""Regenerate docs/bad-input.md from the bad-input catalogue (tests/reliability/test_r4_bad_input.py).

Runs the catalogue's tests (they need the test suite's Prefect server, which its conftest starts) with
DBND_WRITE_BAD_INPUT_DOC=1, so the doc test writes the table of cases and their actual messages.

    .venv/bin/python scripts/bad_input_doc.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    env = {**os.environ, "DBND_WRITE_BAD_INPUT_DOC": "1"}
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist",
                            "tests/reliability/test_r4_bad_input.py"], cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())
