"""The local server's process and port as the operating system sees them: free ports, liveness, /proc identity."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

from dbnd_prefect.errors import ConfigError

DEFAULT_PORT = 4200
HOST = "127.0.0.1"
SERVER_APP = "prefect.server.api.server:create_app"


def choose_port(preferred: int | None = None, avoid: frozenset[int] = frozenset()) -> int:
    """The server's previous port, else Prefect's usual port when free, else any free port; never one of `avoid`
    (ports another process won from us)."""
    for port in (preferred or DEFAULT_PORT, DEFAULT_PORT, 0):
        if port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise ConfigError("no free port on 127.0.0.1 for a local Prefect server", hint="set run.api to a Prefect API URL")

def healthy(url: str | None) -> bool:
    if not url:
        return False
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200 and answer.read().strip() == b"true"
    except (OSError, ValueError):
        return False

def listens(pid: int, port: int | None) -> bool | None:
    """Whether process `pid` holds the listening socket of `port`; None when /proc cannot tell."""
    if port is None:
        return None
    inodes = set()
    try:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        inodes.add(f"socket:[{fields[9]}]")
        held = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink()}
    except (OSError, IndexError, ValueError):
        return None
    return bool(inodes & held)

def port_free(port: int | None) -> bool:
    if port is None:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True

def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not reaped yet) is gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True

def foreign(pid: int, port: int | None, home: Path) -> str:
    """Why `pid` is not the Prefect server of `home` on `port` any more; empty when it is (or /proc cannot tell)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "" if not Path("/proc/self").exists() else f"process {pid} cannot be inspected"
    if SERVER_APP.encode() not in args or (port is not None and str(port).encode() not in args):
        return f"process {pid} is not its Prefect server any more"
    with contextlib.suppress(OSError):
        environ = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                       if b"=" in item)
        served = environ.get(b"PREFECT_HOME")
        if served and Path(os.fsdecode(served)).expanduser().resolve() != home.resolve():
            return f"process {pid} serves another PREFECT_HOME ({os.fsdecode(served)})"
    return ""

def terminate(pid: int, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGCONT)  # a paused (SIGSTOP) server handles its SIGTERM only when resumed
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)

def port_of(url: str | None) -> int | None:
    with contextlib.suppress(IndexError, ValueError):
        return int(url.rsplit(":", 1)[1].split("/", 1)[0]) if url else None
    return None
