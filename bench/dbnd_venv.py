"""The original DBND 1.0.34 in its own virtualenv (`.cache/bench-dbnd-venv`), installed once by the bench.

    .venv/bin/python bench/dbnd_venv.py      # install it now (a no-op when it is installed)
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".cache" / "bench-dbnd-venv"
REQUIREMENTS = ("dbnd==1.0.34.1", "dbnd-run==1.0.34.1", "pandas")
# Written after a successful install, holding the requirements it installed: its presence means "installed".
MARKER = VENV / ".bench-installed"


def dbnd_executable() -> Path:
    return VENV / "bin" / "dbnd"


def installed() -> bool:
    return MARKER.exists() and MARKER.read_text() == "\n".join(REQUIREMENTS) and dbnd_executable().exists()


def ensure_dbnd_venv(log=lambda text: print(text, file=sys.stderr, flush=True)) -> str | None:
    """Install the original DBND into VENV unless it is there; None when ready, else why it is not."""
    if installed():
        return None
    log(f"installing the original DBND into {VENV} ({' '.join(REQUIREMENTS)}); once only")
    try:
        if not (VENV / "bin" / "python").exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        done = subprocess.run([*pip, *REQUIREMENTS], capture_output=True, text=True, timeout=1200)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot create {VENV}: {exc}"
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return f"`pip install {' '.join(REQUIREMENTS)}` into {VENV} failed: {lines[-1] if lines else done.returncode}"
    check = subprocess.run([str(dbnd_executable()), "--help"], capture_output=True, text=True, timeout=300)
    if check.returncode != 0:
        return f"{dbnd_executable()} --help failed after install: {(check.stderr or check.stdout)[-300:]}"
    MARKER.write_text("\n".join(REQUIREMENTS))
    return None


if __name__ == "__main__":
    reason = ensure_dbnd_venv()
    print(reason or f"ready: {dbnd_executable()}")
    sys.exit(1 if reason else 0)
