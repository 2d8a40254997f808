"""The local Prefect server that runs share (run.api unset or "local", no PREFECT_API_URL).

Each test uses its own PREFECT_HOME and stops what it started; the suite's own server is not used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO
from tests.servers import free_port

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
    # nor a server process that outlived its parent (seen once: the uvicorn child of a server paused with SIGSTOP)
    deadline = time.monotonic() + 15
    while (left := _processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def dbnd(project, *args: str, timeout: float = 180, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    folder, _, env = project
    return subprocess.run([DBND, *args], cwd=folder, env={**env, **(env_extra or {})}, capture_output=True,
                          text=True, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _processes_of(home: Path) -> list[int]:
    """Live processes whose environment has PREFECT_HOME=home (a server started for that home)."""
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0") and _alive(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def _poll(condition: Callable[[], bool], timeout: float = 30) -> bool:
    """Whether `condition` became true before `timeout` seconds passed (checked every 0.2 s)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _profile_api_url(home: Path) -> str | None:
    """PREFECT_API_URL of the active profile in `home`'s profiles.toml, as Prefect itself reads it."""
    import tomllib

    path = home / "profiles.toml"
    if not path.exists():
        return None
    profiles = tomllib.loads(path.read_text())
    return profiles.get("profiles", {}).get(profiles.get("active", "ephemeral"), {}).get("PREFECT_API_URL")


def _work_pools(api_url: str) -> list[str]:
    request = urllib.request.Request(f"{api_url}/work_pools/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return [pool["name"] for pool in json.loads(answer.read())]


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

        assert f"log: {home / 'dbnd-server.log'}" in status.stdout
        assert (home / "dbnd-server.log").read_text().startswith("--- dbnd: starting a Prefect server on")

        # Prefect's own CLI finds the server through the profile dbnd pointed at it: nothing set by hand.
        assert _profile_api_url(home) == url
        prefect_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
        pool = subprocess.run([str(Path(sys.executable).parent / "prefect"), "work-pool", "create", "dbnd-pool",
                               "--type", "process"], cwd=folder, env=prefect_env, capture_output=True, text=True,
                              timeout=180)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        assert "dbnd-pool" in _work_pools(url)

        stopped = dbnd(project, "server", "stop")
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
        assert _poll(lambda: not _alive(pid), timeout=15)
        assert not (home / "server.pid").exists() and not (home / "dbnd-server.json").exists()
        assert dbnd(project, "server", "status").stdout.startswith("stopped")
        assert _profile_api_url(home) is None  # undone: the URL was still the one dbnd set
    finally:
        if blocker is not None:
            blocker.close()


@pytest.mark.slow
def test_a_stale_server_record_is_replaced(project):
    folder, home, env = project
    home.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = free_port()
    (home / "dbnd-server.json").write_text(json.dumps({"url": f"http://127.0.0.1:{port}/api", "port": port,
                                                       "pid": dead.pid}))
    (home / "server.pid").write_text(str(dead.pid))
    (home / "dbnd-server.log").write_text("--- dbnd: starting a Prefect server\n"
                                          "sqlite3.OperationalError: disk I/O error\n")
    status = dbnd(project, "server", "status")
    assert status.stdout.startswith("stale: its process is gone")
    assert f"last lines of {home / 'dbnd-server.log'}:" in status.stdout  # after a crash: why, from its log
    assert "sqlite3.OperationalError: disk I/O error" in status.stdout

    ran = dbnd(project, "run", "chain.py:chain")
    assert ran.returncode == 0, ran.stderr
    state = json.loads((home / "dbnd-server.json").read_text())
    assert state["pid"] != dead.pid and _alive(state["pid"])
    assert dbnd(project, "server", "status").stdout.startswith("running")
    assert _profile_api_url(home) == state["url"]


@pytest.mark.slow
def test_a_port_taken_between_choice_and_bind_moves_the_server_and_never_adopts_the_other(tmp_path, monkeypatch):
    """Two homes starting at once both choose a free port 4200; the one that loses the bind must not take the
    winner (another home's server, answering /api/health) for its own, and must start on another port."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dbnd_prefect.runtime import local_server, server_process

    class OtherHomesServer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args: object) -> None:
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), OtherHomesServer)
    taken = other.server_address[1]
    threading.Thread(target=other.serve_forever, daemon=True).start()
    real_choice = server_process.choose_port
    choices = iter([taken])  # the first choice is the port the other server binds just before ours
    monkeypatch.setattr(server_process, "choose_port",
                        lambda preferred=None, avoid=frozenset(): next(choices, None) or real_choice(preferred, avoid))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    home = tmp_path / "home"
    try:
        url = local_server.ensure_running(home, announce=False)
        found = local_server.status(home)
        assert found.state == "running" and found.url == url
        assert server_process.port_of(url) not in (taken, server_process.DEFAULT_PORT)  # moved on, not adopted
        assert server_process.listens(found.pid, server_process.port_of(url)) is True
        assert "address already in use" in (home / local_server.LOG_FILE).read_text()  # the lost bind, logged
    finally:
        local_server.stop(home)
        other.shutdown()
        other.server_close()
        leftover = _processes_of(home)
        for pid in leftover:  # a failed assertion must not leave a server behind
            os.kill(pid, signal.SIGKILL)
    assert leftover == [], "a server of this home outlived local_server.stop"


@pytest.mark.slow
def test_a_paused_server_is_waited_for_and_never_replaced(project):
    folder, home, env = project
    started = dbnd(project, "server", "start")
    assert started.returncode == 0, started.stderr
    state = json.loads((home / "dbnd-server.json").read_text())
    pid, url = state["pid"], state["url"]
    os.kill(pid, signal.SIGSTOP)  # alive, but answers nothing: as a server busy for minutes
    try:
        status = dbnd(project, "server", "status")
        assert status.stdout.startswith("not answering") and "`dbnd server stop`" in status.stdout

        # Past the wait limit the run fails on one line; the server is not touched.
        env["DBND_SERVER_WAIT_SECONDS"] = "3"
        gave_up = dbnd(project, "run", "chain.py:chain")
        assert gave_up.returncode != 0
        assert "has not answered for 3 s and was not stopped" in gave_up.stderr
        assert "dbnd server status" in gave_up.stderr and "dbnd server stop" in gave_up.stderr
        assert "Traceback" not in gave_up.stderr
        assert _alive(pid) and json.loads((home / "dbnd-server.json").read_text())["pid"] == pid

        # Within the limit the run waits for it, and completes on the same server once it answers again.
        env["DBND_SERVER_WAIT_SECONDS"] = "120"
        run = subprocess.Popen([DBND, "run", "chain.py:chain"], cwd=folder, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        errors: list[str] = []

        def resume_once_waited_for() -> None:  # the run says it waits: leave it waiting a few seconds, then resume
            for line in run.stderr:  # type: ignore[union-attr]
                errors.append(line)
                if "waiting up to" in line:
                    time.sleep(4)
                    os.kill(pid, signal.SIGCONT)

        watcher = threading.Thread(target=resume_once_waited_for, daemon=True)
        watcher.start()
        out = run.stdout.read()  # type: ignore[union-attr]
        assert run.wait(timeout=300) == 0, "".join(errors)
        watcher.join(timeout=30)
        assert f"waiting up to 120 s for the local Prefect server (pid {pid})" in "".join(errors)
        assert "started a local Prefect server" not in "".join(errors)
        assert url[: -len("/api")] in out
        after = json.loads((home / "dbnd-server.json").read_text())
        assert (after["pid"], after["url"]) == (pid, url) and int((home / "server.pid").read_text()) == pid
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_prefect_profile_url_is_set_only_where_none_is_and_undone_only_while_ours(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import sys\n"
        "from dbnd_prefect.runtime.local_server import _profile_url, prefect_home\n"
        "url, name, only_if = (None if a == '-' else a for a in sys.argv[1:])\n"
        "print(_profile_url(prefect_home(), url, name, only_if))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(REPO))

    def profile_url(url: str, name: str = "-", only_if: str = "-") -> str:
        done = subprocess.run([sys.executable, "-c", script, url, name, only_if], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    ours = "http://127.0.0.1:4301/api"
    assert profile_url(ours) == "ephemeral" and _profile_api_url(home) == ours
    assert profile_url("http://127.0.0.1:4302/api") == "None" and _profile_api_url(home) == ours  # set: kept
    assert profile_url("-", "ephemeral", "http://127.0.0.1:4302/api") == "None" and _profile_api_url(home) == ours
    assert profile_url("-", "ephemeral", ours) == "ephemeral" and _profile_api_url(home) is None

    (home / "profiles.toml").write_text('active = "mine"\n\n[profiles.mine]\n'
                                        'PREFECT_API_URL = "https://prefect.example.com/api"\n')
    assert profile_url(ours) == "None"  # the user's own URL is never overwritten
    assert _profile_api_url(home) == "https://prefect.example.com/api"


def test_the_server_log_is_rotated_also_while_the_server_writes_to_it(tmp_path, monkeypatch):
    from dbnd_prefect.runtime import local_server

    monkeypatch.setattr(local_server, "LOG_MAX_BYTES", 1000)
    log = tmp_path / local_server.LOG_FILE
    with open(log, "ab", buffering=0) as server:  # as the server holds it: appending
        for n in range(3):
            server.write(b"x" * 1500)
            local_server._rotate_log(tmp_path, live=True)
            assert log.stat().st_size == 0 and Path(f"{log}.1").stat().st_size == 1500
        server.write(b"after rotation\n")
    assert log.read_bytes() == b"after rotation\n"  # no hole where the old content was
    assert Path(f"{log}.2").exists() and not Path(f"{log}.3").exists()  # LOG_KEEP = 2 old files at most
    log.write_bytes(b"y" * 1001)
    local_server._rotate_log(tmp_path, live=False)  # at start: moved aside
    assert not log.exists() and Path(f"{log}.1").read_bytes() == b"y" * 1001


def test_bad_server_settings_are_one_line_naming_them(project):
    folder, home, env = project
    (folder / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[server]\n'
                                      'database_url = "mysql://me:Hidden-Pass-123@db/prefect"\n')
    bad = dbnd(project, "server", "start")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "server.database_url (dbnd.toml:5)" in bad.stderr and "postgresql+asyncpg://" in bad.stderr
    assert "Hidden-Pass-123" not in bad.stderr
    env["DBND_SERVER_WAIT_SECONDS"] = "soon"
    bad = dbnd(project, "server", "start")
    assert bad.returncode == 2 and "DBND_SERVER_WAIT_SECONDS = 'soon' is not a number of seconds" in bad.stderr
    assert not (home / "server.pid").exists()


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
        done = dbnd(project, *args, env_extra={"PREFECT_LOGGING_LEVEL": "INFO"})
        assert done.returncode == 0, (args, done.stderr)
        assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, (args, done.stderr)
        assert "temporary server" not in done.stdout + done.stderr, args  # nor Prefect's in-process one
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
