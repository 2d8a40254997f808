"""The local Prefect server that runs share (run.api unset or "local", no PREFECT_API_URL).

Each test uses its own PREFECT_HOME and stops what it started; the suite's own server is not used.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

DBND = str(Path(sys.executable).parent / "dbnd")

CHAIN = '''
from dbnd_prefect import pipeline, task

@task
def inc(x: int) -> int:
    return x + 1

@pipeline
def chain(n: int = 3):
    value = 0
    for _ in range(n):
        value = inc(value)
    return value

if __name__ == "__main__":
    print("value", chain())
'''


@pytest.fixture
def project(tmp_path: Path):
    """A project folder, a PREFECT_HOME of its own and the environment of a user with no Prefect server."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "chain.py").write_text(CHAIN)
    (folder / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(REPO))
    yield folder, home, env
    if (home / "dbnd-server.json").exists() or (home / "server.pid").exists():
        subprocess.run([DBND, "server", "stop"], cwd=folder, env=env, capture_output=True, timeout=60)
    pid_file = home / "server.pid"
    if pid_file.exists():  # a failed assertion must not leave a server behind
        try:
            os.kill(int(pid_file.read_text()), 9)
        except (ProcessLookupError, ValueError):
            pass


def dbnd(project, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    folder, _, env = project
    return subprocess.run([DBND, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_first_run_starts_a_server_later_runs_reuse_it_and_stop_stops_it(project):
    folder, home, env = project
    # Prefect's usual port is taken by someone else: the server must go elsewhere.
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 4200))
        blocker.listen()
    except OSError:
        blocker.close()
        blocker = None
    try:
        first = dbnd(project, "run", "chain.py:chain")
        assert first.returncode == 0, first.stderr
        assert "started a local Prefect server" in first.stderr
        state = json.loads((home / "dbnd-server.json").read_text())
        pid, url = state["pid"], state["url"]
        assert _alive(pid)
        assert int((home / "server.pid").read_text()) == pid  # Prefect's own record: `prefect server stop` works
        if blocker is not None:
            assert ":4200/" not in url
        assert url[: -len("/api")] in first.stdout  # the summary links the run in that server's UI

        second = dbnd(project, "run", "chain.py:chain")
        assert second.returncode == 0, second.stderr
        assert "started a local Prefect server" not in second.stderr
        assert json.loads((home / "dbnd-server.json").read_text())["pid"] == pid

        script = subprocess.run([sys.executable, "chain.py"], cwd=folder, env=env, capture_output=True, text=True,
                                timeout=180)
        assert script.returncode == 0, script.stderr
        assert "value 3" in script.stdout
        assert "started a local Prefect server" not in script.stderr

        status = dbnd(project, "server", "status")
        assert status.returncode == 0 and status.stdout.startswith("running") and url in status.stdout

        stopped = dbnd(project, "server", "stop")
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
        deadline = time.monotonic() + 15
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid)
        assert not (home / "server.pid").exists() and not (home / "dbnd-server.json").exists()
        assert dbnd(project, "server", "status").stdout.startswith("stopped")
    finally:
        if blocker is not None:
            blocker.close()


@pytest.mark.slow
def test_a_stale_server_record_is_replaced(project):
    folder, home, env = project
    home.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "dbnd-server.json").write_text(json.dumps({"url": "http://127.0.0.1:9/api", "port": 9, "pid": dead.pid}))
    (home / "server.pid").write_text(str(dead.pid))
    assert dbnd(project, "server", "status").stdout.startswith("stale")

    ran = dbnd(project, "run", "chain.py:chain")
    assert ran.returncode == 0, ran.stderr
    state = json.loads((home / "dbnd-server.json").read_text())
    assert state["pid"] != dead.pid and _alive(state["pid"])
    assert dbnd(project, "server", "status").stdout.startswith("running")


def test_read_only_commands_start_no_server_and_write_nothing(project):
    folder, home, env = project
    commands = [
        ["plan", "chain.py:chain"],
        ["run", "chain.py:chain", "--describe"],
        ["run", "chain.py:chain", "--help"],
        ["versions", "chain.py:inc"],
        ["show-tasks", "-m", "chain"],
        ["show-config"],
        ["config", "explain", "run.api"],
        ["server", "status"],
    ]
    before = sorted(p.name for p in folder.iterdir())
    for args in commands:
        started = time.monotonic()
        done = dbnd(project, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, (args, done.stderr)
        assert time.monotonic() - started < 30, args  # a temporary Prefect server would take longer
    assert not (home / "server.pid").exists() and not (home / "dbnd-server.json").exists()
    after = sorted(p.name for p in folder.iterdir() if p.name != "__pycache__")
    assert after == before  # no data/ folder, no .dbnd/


def test_run_api_is_shown_with_its_source_and_checked(project):
    folder, _, _ = project
    shown = dbnd(project, "config", "explain", "run.api")
    assert shown.returncode == 0
    (folder / "dbnd.toml").write_text('[run]\ndata_root = "data"\napi = "sometimes"\n')
    bad = dbnd(project, "run", "chain.py:chain")
    assert bad.returncode == 2
    assert "run.api" in bad.stderr and "dbnd.toml" in bad.stderr and "temporary" in bad.stderr
    assert "Traceback" not in bad.stderr
