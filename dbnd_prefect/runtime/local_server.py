"""The local Prefect server that dbnd runs share: started once in the background, reused after.

Prefect needs an API. Without one, every process starts and stops a temporary server (about 10 s
and 400 MB per `dbnd run`). Instead, the first run starts `prefect server start --background` for
the user's PREFECT_HOME on 127.0.0.1, and later runs (CLI, scripts, notebooks) find it through a
small state file beside Prefect's own `server.pid`, so the runs also share one UI and one history.
`prefect server stop` and `dbnd server stop` both stop it.

A server that is gone or stale (crashed, its pid reused by another program, its port answering for
someone else) is detected by checking the recorded process and asking its health endpoint, and is
replaced. Starting is serialised across processes by a file lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from dbnd_prefect.errors import ConfigError

STATE_FILE = "dbnd-server.json"
PID_FILE = "server.pid"  # Prefect's own, written by `prefect server start --background`
DEFAULT_PORT = 4200
HOST = "127.0.0.1"
START_TIMEOUT = 90.0


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """What is known of this PREFECT_HOME's background server."""

    home: Path
    state: str  # "running", "stopped" or "stale"
    url: str | None = None  # the API URL, e.g. http://127.0.0.1:4200/api
    pid: int | None = None
    reason: str = ""

    @property
    def ui_url(self) -> str | None:
        return self.url[: -len("/api")] if self.url else None


def prefect_home() -> Path:
    """PREFECT_HOME as Prefect resolves it (environment, profile or ~/.prefect)."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser()


def status(home: Path | None = None) -> ServerStatus:
    """Whether the background server of `home` runs and answers; never starts or stops anything."""
    home = home or prefect_home()
    state = _read_state(home) or _adopted(home)
    if state is None:
        if _read_pid(home) is not None:
            return ServerStatus(home, "stale", None, _read_pid(home), f"{home / PID_FILE} names no running server")
        return ServerStatus(home, "stopped", reason="no background server")
    url, pid, port = state.get("url"), state.get("pid"), state.get("port")
    if not isinstance(pid, int) or not _alive(pid):
        return ServerStatus(home, "stale", url, pid, "its process is gone")
    if not _is_server_process(pid, port):
        return ServerStatus(home, "stale", url, pid, f"process {pid} is not its Prefect server any more")
    if not _healthy(url):
        return ServerStatus(home, "stale", url, pid, f"{url} does not answer")
    return ServerStatus(home, "running", url, pid)


def ensure_running(home: Path | None = None, announce: bool = True) -> str:
    """The API URL of the background server of `home`, starting (or replacing) it when needed."""
    home = home or prefect_home()
    found = status(home)
    if found.state == "running":
        return found.url  # type: ignore[return-value]
    home.mkdir(parents=True, exist_ok=True)
    with _start_lock(home):
        found = status(home)  # another process may have started it while we waited
        if found.state == "running":
            return found.url  # type: ignore[return-value]
        if found.state == "stale":
            _clean_up(home, found)
        url, pid = _start(home)
    if announce:
        print(f"dbnd: started a local Prefect server for {home}; UI at {url[:-len('/api')]} "
              "(it keeps running for later runs; `dbnd server stop` stops it)", file=sys.stderr)
    return url


def stop(home: Path | None = None) -> ServerStatus:
    """Stop the background server of `home` (if any) and remove its state; what was found."""
    home = home or prefect_home()
    found = status(home)
    _clean_up(home, found)
    return found


def _start(home: Path) -> tuple[str, int]:
    port = _choose_port()
    url = f"http://{HOST}:{port}/api"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_UI_API_URL=url,  # the UI asks this address for its data
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL=env.get("PREFECT_SERVER_LOGGING_LEVEL", "WARNING"),
    )
    command = [sys.executable, "-m", "prefect", "server", "start", "--background",
               "--host", HOST, "--port", str(port), "--analytics-off"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, start_new_session=True,
                          stdin=subprocess.DEVNULL, timeout=START_TIMEOUT)
    pid = _read_pid(home)
    if done.returncode != 0 or pid is None:
        detail = " ".join((done.stderr or done.stdout or "").split())[-300:]
        raise ConfigError(f"could not start a local Prefect server on {HOST}:{port}: {detail or 'no pid file'}",
                          hint="set run.api to a Prefect API URL, or to 'temporary' for Prefect's per-process server")
    deadline = time.monotonic() + START_TIMEOUT
    while not _healthy(url):
        if not _alive(pid):
            _remove(home / PID_FILE)
            raise ConfigError(f"the local Prefect server on {HOST}:{port} exited while starting",
                              hint="run `prefect server start` to see why, or set run.api to a Prefect API URL")
        if time.monotonic() > deadline:
            _terminate(pid)
            _remove(home / PID_FILE)
            raise ConfigError(f"the local Prefect server on {HOST}:{port} did not answer in {START_TIMEOUT:.0f} s",
                              hint="set run.api to a Prefect API URL, or to 'temporary'")
        time.sleep(0.2)
    _write_state(home, {"url": url, "port": port, "pid": pid, "started": time.time()})
    return url, pid


def _adopted(home: Path) -> dict | None:
    """The state of a server started with `prefect server start --background` by hand, read off its process."""
    pid = _read_pid(home)
    if pid is None or not _alive(pid):
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    except (OSError, ValueError, IndexError):
        return None
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return {"url": f"http://{host}:{port}/api", "port": port, "pid": pid}


def _clean_up(home: Path, found: ServerStatus) -> None:
    """Stop a recorded server that is still ours and remove both state files."""
    if found.pid is not None and _alive(found.pid) and _is_server_process(found.pid, _port_of(found.url)):
        _terminate(found.pid)
    recorded = _read_pid(home)
    if recorded is None or recorded == found.pid or not _alive(recorded):
        _remove(home / PID_FILE)
    _remove(home / STATE_FILE)


def _choose_port() -> int:
    """Prefect's usual port when it is free, else any free port."""
    for port in (DEFAULT_PORT, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ConfigError("no free port on 127.0.0.1 for a local Prefect server", hint="set run.api to a Prefect API URL")


def _healthy(url: str | None) -> bool:
    if not url:
        return False
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200 and answer.read().strip() == b"true"
    except (OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_server_process(pid: int, port: int | None) -> bool:
    """True when `pid` runs Prefect's server on `port` (always true where /proc cannot tell)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc/self").exists()
    return b"prefect.server.api.server:create_app" in args and str(port).encode() in args


def _terminate(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _port_of(url: str | None) -> int | None:
    try:
        return int(url.rsplit(":", 1)[1].split("/", 1)[0]) if url else None
    except (IndexError, ValueError):
        return None


def _read_state(home: Path) -> dict | None:
    try:
        data = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(home: Path, state: dict) -> None:
    staging = home / f".{STATE_FILE}.{os.getpid()}"
    staging.write_text(json.dumps(state))
    os.replace(staging, home / STATE_FILE)


def _read_pid(home: Path) -> int | None:
    try:
        return int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    with open(home / ".dbnd-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
