"""The local Prefect server that dbnd runs share: started once in the background, reused after.

Without a Prefect API every process starts and stops a temporary server (about 10 s and 400 MB per run).
Instead the first run starts Prefect's server (what `prefect server start --background` starts) for the
user's PREFECT_HOME on 127.0.0.1; later runs find it through a state file beside Prefect's `server.pid`.
A live server is never killed except by `dbnd server stop` (or `prefect server stop`): one that does not
answer is waited for, with backoff, up to `wait_seconds()`; only a stale record (process gone, not a Prefect
server any more, or serving another PREFECT_HOME) is replaced. Starting is serialised by a file lock. The
server logs to PREFECT_HOME/dbnd-server.log, rotated at LOG_MAX_BYTES. When dbnd starts it and the active
Prefect profile sets no PREFECT_API_URL, the profile is pointed at it, and `stop` undoes that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from dbnd_prefect.errors import ConfigError
from dbnd_prefect.redaction import redact
from dbnd_prefect.runtime import server_process as os_process
from dbnd_prefect.runtime.server_process import HOST, SERVER_APP

STATE_FILE = "dbnd-server.json"
PID_FILE = "server.pid"  # Prefect's own: `prefect server stop` reads it
LOG_FILE = "dbnd-server.log"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_KEEP = 2
START_TIMEOUT = 180.0  # a first start migrates the database: over 90 s was seen on a loaded 2-core machine
DEFAULT_WAIT_SECONDS = 60.0
DATABASE_SCHEMES = ("postgresql+asyncpg://", "sqlite+aiosqlite://")


@dataclasses.dataclass(frozen=True)
class ServerStatus:
    """What is known of this PREFECT_HOME's background server."""

    home: Path
    state: str  # "running", "unresponsive" (alive, not answering), "stale" or "stopped"
    url: str | None = None  # the API URL, e.g. http://127.0.0.1:4200/api
    pid: int | None = None
    reason: str = ""
    database: str | None = None  # the configured database URL, password removed; None for Prefect's SQLite

    @property
    def ui_url(self) -> str | None:
        return self.url[: -len("/api")] if self.url else None

    @property
    def log(self) -> Path:
        return self.home / LOG_FILE


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
    url, pid, database = state.get("url"), state.get("pid"), state.get("database")
    if not isinstance(pid, int) or not os_process.alive(pid):
        return ServerStatus(home, "stale", url, pid, "its process is gone", database)
    foreign = os_process.foreign(pid, state.get("port"), home)
    if foreign:
        return ServerStatus(home, "stale", url, pid, foreign, database)
    if not os_process.healthy(url) or os_process.listens(pid, os_process.port_of(url)) is False:  # another home's server may answer on the port
        return ServerStatus(home, "unresponsive", url, pid, f"process {pid} is alive but {url} does not answer",
                            database)
    return ServerStatus(home, "running", url, pid, "", database)


def ensure_running(home: Path | None = None, announce: bool = True) -> str:
    """The API URL of the background server of `home`: waits for a live one, starts one when there is none."""
    home = home or prefect_home()
    found = status(home)
    if found.state == "running":
        _rotate_log(home, live=True)
        changed = database_change(found)
        if changed:
            print(f"dbnd: {changed}", file=sys.stderr)
        return found.url  # type: ignore[return-value]
    limit, started, lost = wait_seconds(), False, set()
    for _ in range(3):  # a server that dies while waited for is replaced; one we start and that dies is an error
        if found.state in ("stale", "stopped"):
            home.mkdir(parents=True, exist_ok=True)
            with _start_lock(home):
                found = status(home)  # another process may have started it while we waited
                if found.state in ("stale", "stopped"):
                    _clean_up(home, found)
                    if started:  # ours lost its port to another home's server: that one wants Prefect's port too
                        lost |= {os_process.port_of(found.url), os_process.DEFAULT_PORT}
                    found = _launch(home, os_process.port_of(found.url), frozenset(lost - {None}))
                    started = True
        if found.state == "unresponsive":
            found = _wait_for(home, found, limit, started)
        if found.state == "running":
            if started and announce:
                print(f"dbnd: started a local Prefect server for {home}; UI at {found.ui_url} "
                      f"(it keeps running for later runs; `dbnd server stop` stops it; log {found.log})",
                      file=sys.stderr)
            return found.url  # type: ignore[return-value]
    if started:  # never leave a server of ours behind an error
        _clean_up(home, found)
    raise ConfigError(f"the local Prefect server of {home} keeps going away ({found.reason})",
                      hint=f"see `dbnd server status` and {home / LOG_FILE}")


def stop(home: Path | None = None) -> ServerStatus:
    """Stop the background server of `home` (if any), undo its Prefect profile URL, remove its state; what was found."""
    home = home or prefect_home()
    found = status(home)
    _clean_up(home, found)
    return found


def wait_seconds() -> float:
    """How long a run waits for a live server that does not answer (DBND_SERVER_WAIT_SECONDS, [server] wait_seconds)."""
    value, source = _setting("wait_seconds", "DBND_SERVER_WAIT_SECONDS")
    if value is None:
        return DEFAULT_WAIT_SECONDS
    with contextlib.suppress(TypeError, ValueError):
        if float(value) >= 0:
            return float(value)
    raise ConfigError(f"{source} = {value!r} is not a number of seconds", hint="set it to e.g. 60")


def database_url() -> str | None:
    """The configured database of the server (DBND_SERVER_DATABASE_URL or [server] database_url), checked."""
    value, source = _setting("database_url", "DBND_SERVER_DATABASE_URL")
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith(DATABASE_SCHEMES):
        raise ConfigError(f"{source} = {redact(value)!r} is not a database URL Prefect's server can use",
                          hint="use postgresql+asyncpg://USER:PASSWORD@HOST:5432/DATABASE")
    return value


def database_change(found: ServerStatus) -> str:
    """A line saying the running server's database is not the configured one (read at start); empty if it is."""
    configured = database_url()
    wanted = redact(configured) if configured else None
    if found.state != "running" or wanted == found.database:
        return ""
    return (f"the local Prefect server uses {found.database or 'SQLite in ' + str(found.home)}, but [server] "
            f"database_url is now {wanted or 'unset (SQLite)'}: `dbnd server stop` then `dbnd server start` to switch")


def last_log_lines(home: Path, count: int = 15) -> list[str]:
    """The last `count` lines of the server log of `home` (redacted), none when there is no log."""
    try:
        with open(home / LOG_FILE, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    return [redact(line) for line in lines[-count:]]


def is_own_profile_url(url: str | None) -> bool:
    """True when `url` is the local server's URL that dbnd wrote into the Prefect profile of this PREFECT_HOME."""
    state = _read_state(prefect_home()) if url else None
    return bool(state and state.get("profile") and state.get("url") == url)


def _setting(key: str, env_name: str) -> tuple[Any, str]:
    if os.environ.get(env_name) is not None:
        return os.environ[env_name], f"env {env_name}"
    from dbnd_prefect.config import current_config

    found = current_config().get_value("server", key)
    return (found.value, f"server.{key} ({found.source})") if found is not None else (None, f"server.{key}")


def _launch(home: Path, preferred_port: int | None, avoid: frozenset[int] = frozenset()) -> ServerStatus:
    """Start the server process of `home` and record it (pid file, state, profile); it may not answer yet."""
    database = database_url()
    port = os_process.choose_port(preferred_port, avoid)
    url = f"http://{HOST}:{port}/api"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_UI_API_URL=url,  # the UI asks this address for its data
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOGGING_LEVEL=env.get("PREFECT_SERVER_LOGGING_LEVEL", "WARNING"),
        PREFECT__SERVER_FINAL="1",
    )
    if database:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
    import prefect

    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent), "--factory",
               SERVER_APP, "--host", HOST, "--port", str(port), "--no-access-log"]
    _rotate_log(home, live=False)
    with open(home / LOG_FILE, "ab", buffering=0) as log:  # O_APPEND: the live log can be truncated under it
        log.write(f"--- dbnd: starting a Prefect server on {url} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=home)
    (home / PID_FILE).write_text(str(process.pid))
    state = {"url": url, "port": port, "pid": process.pid, "started": time.time(),
             "database": redact(database) if database else None}
    state["profile"] = _profile_url(home, url)
    _write_state(home, state)
    return ServerStatus(home, "unresponsive", url, process.pid, "starting", state["database"])


def _wait_for(home: Path, found: ServerStatus, limit: float, started: bool) -> ServerStatus:
    """Wait, with backoff, for the live server `found` to answer; never stops it."""
    state = _read_state(home) or {}
    since = time.time() - float(state.get("started") or 0)
    if not state.get("ready") and since < START_TIMEOUT:  # its first start: migrations take long on a busy machine
        limit = max(limit, START_TIMEOUT - since)
    deadline, delay = time.monotonic() + limit, 0.2
    if not started:
        print(f"dbnd: waiting up to {limit:.0f} s for the local Prefect server (pid {found.pid}) at {found.url} "
              "to answer", file=sys.stderr)
    while (now := status(home)).state == "unresponsive" and now.pid == found.pid:
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the local Prefect server (pid {found.pid}) at {found.url} is alive but has not answered for "
                f"{limit:.0f} s and was not stopped: see `dbnd server status` (log {home / LOG_FILE}), or stop it "
                "with `dbnd server stop`", hint="wait longer with DBND_SERVER_WAIT_SECONDS or [server] wait_seconds")
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 5.0)
    if started and now.state == "stale" and not os_process.alive(found.pid or 0):
        if not os_process.port_free(os_process.port_of(found.url)):  # another server took the port between our choice and our bind
            return dataclasses.replace(now, reason=f"{found.url} was taken by another process while starting")
        tail = " | ".join(line.strip() for line in last_log_lines(home, 3))
        _clean_up(home, now)
        raise ConfigError(f"the local Prefect server on {found.url} exited while starting: {tail or 'no log'}",
                          hint=f"see {home / LOG_FILE}, or set run.api to a Prefect API URL")
    if started and now.state == "running" and state.get("pid") == now.pid:
        _write_state(home, {**state, "ready": True})  # later waiters get no start-up grace
    return now


def _adopted(home: Path) -> dict | None:
    """The state of a server started with `prefect server start --background` by hand, read off its process."""
    pid = _read_pid(home)
    if pid is None or not os_process.alive(pid):
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
    except (OSError, ValueError, IndexError):
        return None
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return {"url": f"http://{host}:{port}/api", "port": port, "pid": pid}


def _clean_up(home: Path, found: ServerStatus) -> None:
    """Stop a recorded server that is still ours, undo its profile URL and remove both state files."""
    if found.pid is not None and os_process.alive(found.pid) and not os_process.foreign(found.pid, os_process.port_of(found.url), home):
        os_process.terminate(found.pid)
    state = _read_state(home) or {}
    if state.get("profile") and state.get("url"):
        _profile_url(home, None, name=state["profile"], only_if=state["url"])
    recorded = _read_pid(home)
    if recorded is None or recorded == found.pid or not os_process.alive(recorded):
        (home / PID_FILE).unlink(missing_ok=True)
    (home / STATE_FILE).unlink(missing_ok=True)


def _profile_url(home: Path, url: str | None, name: str | None = None, only_if: str | None = None) -> str | None:
    """Point the Prefect profile `name` (the active one) of `home` at `url` (None: unset it) unless it sets a URL
    other than `only_if`, as `prefect config set|unset PREFECT_API_URL` do; the profile's name when changed."""
    from prefect.context import get_settings_context
    from prefect.settings import PREFECT_API_URL
    from prefect.settings.profiles import load_profiles, save_profiles

    if prefect_home().resolve() != home.resolve():
        return None  # Prefect's profile functions work on the current PREFECT_HOME's profiles.toml only
    name = name or get_settings_context().profile.name
    profiles = load_profiles()
    if (profiles[name].settings.get(PREFECT_API_URL) if name in profiles.names else None) != only_if:
        return None  # the user's own setting: never overwritten
    profiles.update_profile(name, {PREFECT_API_URL: url})
    save_profiles(profiles)
    return name




def _rotate_log(home: Path, live: bool) -> None:
    """Keep the log under LOG_MAX_BYTES: move it to .1 (.1 to .2 ...); a live one is copied, then truncated."""
    log = home / LOG_FILE
    try:
        if log.stat().st_size <= LOG_MAX_BYTES:
            return
        for n in range(LOG_KEEP - 1, 0, -1):
            if Path(f"{log}.{n}").exists():
                os.replace(f"{log}.{n}", f"{log}.{n + 1}")
        if live:  # the server holds it open for appending: a rename would keep it growing
            shutil.copyfile(log, f"{log}.1")
            os.truncate(log, 0)
        else:
            os.replace(log, f"{log}.1")
    except OSError:
        pass
















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
    with contextlib.suppress(OSError, ValueError):
        return int((home / PID_FILE).read_text().strip())
    return None


@contextlib.contextmanager
def _start_lock(home: Path) -> Iterator[None]:
    with open(home / ".dbnd-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
