"""A real `distributed` cluster on 127.0.0.1 for tests: one scheduler and two worker processes.

`dask_cluster(env)` starts them (each in its own process group, ended with the context, and by the kernel
should pytest die first) and yields the scheduler address and the worker names. Workers import the tests'
modules (PYTHONPATH is the repository) and get `env` (e.g. the S3 emulator's endpoint and keys).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from tests.servers import _die_with_parent, _log_tail, _stop_process, free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class DaskCluster:
    address: str  # tcp://127.0.0.1:PORT of the scheduler
    workers: tuple[str, ...]  # the workers' names
    pids: tuple[int, ...]  # scheduler and worker processes


@contextlib.contextmanager
def dask_cluster(env: Mapping[str, str] | None = None, workers: int = 2, threads: int = 1) -> Iterator[DaskCluster]:
    """A scheduler and `workers` worker processes of `threads` threads each, stopped on exit."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    names = tuple(f"dbnd-worker-{i + 1}" for i in range(workers))
    with tempfile.TemporaryDirectory(prefix="dbnd-dask-") as folder, contextlib.ExitStack() as stack:
        scheduler = stack.enter_context(_process(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard", "--no-show"], Path(folder) / "scheduler.log", full_env))
        processes = [scheduler]
        for name in names:
            processes.append(stack.enter_context(_process(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", name, "--host", "127.0.0.1",
                 "--nworkers", "1", "--nthreads", str(threads), "--no-dashboard", "--no-nanny",
                 "--local-directory", folder], Path(folder) / f"{name}.log", full_env)))
        _wait_for_workers(address, len(names), processes, Path(folder))
        yield DaskCluster(address, names, tuple(p.pid for p in processes))


@contextlib.contextmanager
def _process(argv: list[str], log: Path, env: Mapping[str, str]) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=log.parent, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env), start_new_session=True, preexec_fn=_die_with_parent)
        try:
            yield proc
        finally:
            _stop_process(proc)


def _wait_for_workers(address: str, count: int, processes: list[subprocess.Popen], folder: Path) -> None:
    from distributed import Client

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                logs = "\n".join(_log_tail(log, 1500) for log in sorted(folder.glob("*.log")))
                raise RuntimeError(f"a dask process exited with {proc.returncode}:\n{logs}")
        try:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(count, timeout=max(1.0, deadline - time.monotonic()))
                return
        except (OSError, TimeoutError):
            time.sleep(0.3)
    logs = "\n".join(_log_tail(log, 1500) for log in sorted(folder.glob("*.log")))
    raise RuntimeError(f"dask cluster at {address} not ready within {START_TIMEOUT:.0f} s:\n{logs}")


def running(pid: int) -> bool:
    """Whether process `pid` still exists (and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
