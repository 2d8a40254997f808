"""Run pipeline processes fast: a server process imports the pipeline's libraries once, then forks one fresh
process per run (what a pre-forking server does), so a test can start and SIGKILL many real pipeline
processes without paying ~2.5 s of imports for each.

The server (`python -m tests.reliability.zygote`) reads JSON requests on stdin, one per line:
    {"run": {"cwd": ..., "env": {...}, "args": [...], "out": path, "cli": false}}  -> {"pid": N}
    {"wait": N}                                                     -> {"pid": N, "code": exit code or -signal}
A child runs `tests.reliability.pipelines.main(args)` (with "cli": the `dbnd` command with `args`) in `cwd` with `env` added to its environment, its
stdout and stderr going to `out`. The server exits at the end of its input.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _child(request: dict) -> int:
    os.chdir(request["cwd"])
    os.environ.update(request["env"])
    import tempfile

    tempfile.tempdir = None  # TMPDIR may have changed
    fd = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from tests.reliability import pipelines

    try:
        if request.get("cli"):
            from dbnd_prefect.cli import main

            return main(request["args"])
        pipelines.main(request["args"])
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


# imported lazily by a pipeline run (measured with sys.modules before and after one): imported here once
WARM_MODULES = (
    "prefect.flow_engine", "prefect.task_engine", "prefect.artifacts", "prefect.concurrency", "fastapi",
    "starlette.applications", "graphviz", "pyarrow.parquet", "pyarrow.pandas_compat", "pyarrow.fs", "xxhash",
    "dbnd_prefect.execution", "dbnd_prefect.storage", "dbnd_prefect.record_store", "dbnd_prefect.tracking",
    "dbnd_prefect.history", "dbnd_prefect.prefect_quiet", "dbnd_prefect.cloud", "dbnd_prefect.fingerprint",
    "dbnd_prefect.remote_tasks", "dbnd_prefect.work_pools", "dbnd_prefect.cli", "s3fs", "botocore.session",
)


def serve() -> None:
    import importlib

    import tests.reliability.pipelines  # noqa: F401  - the libraries every child needs, imported once

    for name in WARM_MODULES:  # no code runs that starts threads or event loops: forking stays safe
        with contextlib.suppress(ImportError):
            importlib.import_module(name)

    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "run" in request:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    code = _child(request["run"])
                finally:
                    os._exit(code)
            reply = {"pid": pid}
        else:
            pid, status = os.waitpid(request["wait"], 0)
            reply = {"pid": pid, "code": os.waitstatus_to_exitcode(status)}
        print(json.dumps(reply), flush=True)


class Zygote:
    """Client of a running zygote server (see the module docstring)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self._lock = threading.Lock()  # tests drive several processes from threads
        self.running: set[int] = set()  # started and not yet waited for

    def _ask(self, request: dict) -> dict:
        with self._lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote server exited with {self.proc.wait()}")
        return json.loads(line)

    def start(self, cwd: Path, args: list[str], out: Path, env: dict[str, str] | None = None,
              cli: bool = False) -> int:
        """Fork a process running the reliability pipeline with `args` (or, with `cli`, `dbnd ARGS`); its pid."""
        request = {"cwd": str(cwd), "env": env or {}, "args": args, "out": str(out), "cli": cli}
        pid = self._ask({"run": request})["pid"]
        self.running.add(pid)
        return pid

    def wait(self, pid: int, timeout: float = 180) -> int:
        """Wait for a process started by `start`; its exit code (-9 when SIGKILLed). One still running after
        `timeout` seconds is killed (and its code is then -9)."""
        deadline = time.monotonic() + timeout
        while not ended(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not ended(pid):
            os.kill(pid, signal.SIGKILL)
        code = self._ask({"wait": pid})["code"]
        self.running.discard(pid)
        return code


def ended(pid: int) -> bool:
    """Whether a child of the zygote has exited (it stays a zombie until the zygote waits for it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state in ("Z", "X")


@contextlib.contextmanager
def zygote(env: dict[str, str] | None = None) -> Iterator[Zygote]:
    """A zygote server for the duration of the block (started with this process's environment plus `env`)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "tests.reliability.zygote"], cwd=REPO, env=full_env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
    client = Zygote(proc)
    try:
        ready = proc.stdout.readline()
        if not ready:
            raise RuntimeError(f"the zygote server could not start (exit code {proc.wait()})")
        yield client
    finally:
        for pid in list(client.running):  # left by a test that failed midway
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            client.wait(pid)
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_line(path: Path, text: str, pid: int, timeout: float = 60) -> bool:
    """Wait until the file at `path` has a line containing `text`, or process `pid` has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(text in line for line in path.read_text().splitlines()):
            return True
        if ended(pid):
            return False
        time.sleep(0.005)
    return False


if __name__ == "__main__":
    serve()
