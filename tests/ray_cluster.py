"""A real Ray cluster on 127.0.0.1 for tests: `ray start --head --block`, every port chosen free.

`ray_cluster(env)` starts the head node (GCS, raylet and its worker processes) in a process group of its own,
waits until a driver can connect, yields its address, and stops it with the group; any Ray process of its
session folder still alive afterwards is killed. Workers get `env` (the S3 emulator's endpoint and keys) and
import the tests' modules (PYTHONPATH is the repository).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from tests.servers import _die_with_parent, _log_tail, _stop_process, free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120.0
RAY = str(Path(sys.executable).parent / "ray")
# Ray turns token authentication on by itself once a token exists in ~/.ray (a local `ray.init` writes one):
# the tests' clusters and drivers neither read nor write the user's home
HERMETIC = {"RAY_AUTH_MODE": "disabled"}


@dataclass(frozen=True)
class RayCluster:
    address: str  # 127.0.0.1:PORT of the head's GCS, as `ray.init(address=...)` takes it
    folder: Path  # Ray's temp folder: its session's logs and sockets


def ray_processes(folder: Path) -> list[int]:
    """Live processes started for the cluster whose session lives in `folder`."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cmdline"] and any(str(folder) in part for part in proc.info["cmdline"]) \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


@contextlib.contextmanager
def ray_cluster(env: Mapping[str, str] | None = None, cpus: int = 2) -> Iterator[RayCluster]:
    """A one-node Ray cluster of `cpus` CPUs, stopped on exit."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="dbnd-ray-", dir="/tmp"))  # short: Ray's socket paths have a limit
    workers = ",".join(str(free_port()) for _ in range(2 * cpus + 4))
    argv = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
            f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={folder}",
            f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--worker-port-list={workers}", f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--ray-client-server-port={free_port()}"]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", **HERMETIC, **(env or {})}
    log = folder / "head.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=full_env, start_new_session=True, preexec_fn=_die_with_parent)
    try:
        _wait_started(proc, log)
        yield RayCluster(f"127.0.0.1:{port}", folder)
    finally:
        _stop_process(proc)
        deadline = time.monotonic() + 30
        while ray_processes(folder) and time.monotonic() < deadline:  # raylet ends its workers on its own
            time.sleep(0.5)
        for pid in ray_processes(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_started(proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`ray start --head` exited with {proc.returncode}:\n{_log_tail(log, 3000)}")
        if "Ray runtime started" in log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise RuntimeError(f"Ray did not start within {START_TIMEOUT:.0f} s:\n{_log_tail(log, 3000)}")
