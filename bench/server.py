"""One Prefect API server for a benchmark session: a free 127.0.0.1 port and a throw-away PREFECT_HOME."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_UI_ENABLED": "false",
}


SERVER_GROUP = "BENCH_SERVER_PGID"  # the process group of the bench's server (its session leader's pid)


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group `pgid`."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ..., utime (11), stime (12)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_idle(busy_share: float = 0.05, window: float = 0.5, timeout: float = 30.0) -> float:
    """Wait until the bench's server (`SERVER_GROUP`) uses under `busy_share` of a core over `window` seconds,
    at most `timeout` seconds: after a run it keeps digesting events, which would slow the next timed run.
    The seconds waited; 0 when no server group is known."""
    pgid = int(os.environ.get(SERVER_GROUP) or 0)
    if not pgid:
        return 0.0
    began = time.monotonic()
    last = group_cpu_seconds(pgid)
    while time.monotonic() - began < timeout:
        time.sleep(window)
        now = group_cpu_seconds(pgid)
        if now - last < busy_share * window:
            break
        last = now
    return time.monotonic() - began


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Return once `url`/health answers 200; raise with the server log if it dies or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"prefect server not healthy after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """Run `prefect server start` with PREFECT_HOME=`home` for the block; yield its API URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = home / "server.log"
    prefect_bin = str(Path(sys.executable).parent / "prefect")
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    os.environ[SERVER_GROUP] = str(proc.pid)  # workers started from here wait for it to be idle (`wait_idle`)
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        os.environ.pop(SERVER_GROUP, None)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def temporary_home(keep: bool = False) -> Iterator[Path]:
    """A fresh directory for PREFECT_HOME and the benchmark's data; removed afterwards unless `keep`."""
    home = Path(tempfile.mkdtemp(prefix="dbnd-bench-"))
    try:
        yield home
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
