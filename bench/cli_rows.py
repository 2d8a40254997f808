"""Whole-process `dbnd run` / `dbnd plan` of a task chain: dbnd_prefect vs the original DBND 1.0.34.

dbnd_prefect runs against the suite's already running Prefect server (what its default local-server mode gives
after the first run); `dbnd plan` runs with PREFECT_API_URL unset and must start no server. The original DBND runs
from its own virtualenv (bench/dbnd_venv.py) with its local in-process executor and DBND_HOME as project folder.
Each side has its own project folder, one untimed warm-up run, then timed runs alternating sides. Wall time,
peak RSS and CPU are those of the whole `dbnd` process, taken from `wait4` by this process; the CPU the local
Prefect server used during a dbnd_prefect run is read from /proc (the server shares the machine's cores).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

from dbnd_venv import VENV, dbnd_executable, ensure_dbnd_venv

BENCH = Path(__file__).resolve().parent
CHAIN_PREFECT = "chain_dbnd_prefect.chain"
CHAIN_ORIGINAL = "chain_dbnd_original.chain"


def listening_pid(url: str | None) -> int | None:
    """The pid of the local process listening on `url`'s port (the Prefect server), or None."""
    port = urllib.parse.urlsplit(url or "").port
    if port is None:
        return None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by process `pid` (None if unknown)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def whole_process(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600,
                  server_pid: int | None = None) -> dict[str, Any]:
    """Run `command` to its end; wall seconds, peak RSS (MB) and CPU seconds of the process, the CPU seconds
    the server `server_pid` used meanwhile, exit code, stdout and stderr."""
    server_before = cpu_seconds(server_pid)
    out, err = cwd / f"stdout-{time.monotonic_ns()}.txt", cwd / f"stderr-{time.monotonic_ns()}.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
    server_after = cpu_seconds(server_pid)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: keep Popen from waiting again
    server_cpu = None if server_before is None or server_after is None else server_after - server_before
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "server_cpu_s": server_cpu, "exit": proc.returncode, "stdout": out.read_text(),
            "stderr": err.read_text(), "timed_out": seconds >= timeout}


class CliBench:
    """The `cli_run` and `cli_plan` measures of one suite run; results go to `record(measure, variant, result)`."""

    def __init__(self, home: Path, prefect_env: dict[str, str], quick: bool,
                 record: Callable[[str, str, dict[str, Any]], None], error: Callable[[str], None],
                 log: Callable[[str], None], pause: float) -> None:
        self.home, self.quick, self.record, self.error, self.log, self.pause = home, quick, record, error, log, pause
        self.n = 10 if quick else 100
        bench_path = os.pathsep.join(p for p in (str(BENCH), prefect_env.get("PYTHONPATH")) if p)
        self.prefect_env = {**prefect_env, "PYTHONPATH": bench_path}
        self.prefect_project = home / "cli" / "dbnd_prefect"
        self.original_project = home / "cli" / "dbnd_original"
        self.prefect_dbnd = str(Path(sys.executable).parent / "dbnd")
        self.skipped: str | None = None
        self.server_pid = listening_pid(prefect_env.get("PREFECT_API_URL"))

    def original_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_", "DBND", "VIRTUAL_ENV", "PYTHON"))}
        return {**env, "DBND_HOME": str(self.original_project), "PYTHONPATH": str(BENCH),
                "PATH": os.pathsep.join([str(VENV / "bin"), env.get("PATH", "")])}

    def plan_env(self) -> dict[str, str]:
        """No Prefect API: `dbnd plan` must not need one. A Prefect home of its own, to see if it started one."""
        env = {k: v for k, v in self.prefect_env.items() if k != "PREFECT_API_URL"}
        return {**env, "PREFECT_HOME": str(self.home / "cli" / "plan-prefect-home")}

    # -- commands

    def run_prefect(self, n: int, version: str | None = "now") -> dict[str, Any] | None:
        command = [self.prefect_dbnd, "run", CHAIN_PREFECT, "--set", f"chain.n={n}"]
        command += ["--task-version", version] if version else []
        done = whole_process(command, self.prefect_project, self.prefect_env, server_pid=self.server_pid)
        completed = done["stdout"].count("step: Completed")
        return self._checked("cli_run/dbnd", done, completed == n, f"{completed} of {n} steps completed")

    def run_original(self, n: int) -> dict[str, Any] | None:
        command = [str(dbnd_executable()), "run", CHAIN_ORIGINAL, "--set", f"chain.n={n}", "--task-version", "now"]
        done = whole_process(command, self.original_project, self.original_env())
        completed = sum(1 for line in done["stderr"].splitlines()
                        if " - Task step__" in line and "has been completed!" in line)
        ok = completed == n and "successfully executed" in done["stderr"]
        return self._checked("cli_run/dbnd_original", done, ok, f"{completed} of {n} steps completed")

    def plan_prefect(self, n: int) -> dict[str, Any] | None:
        command = [self.prefect_dbnd, "plan", CHAIN_PREFECT, "--set", f"chain.n={n}"]
        home = Path(self.plan_env()["PREFECT_HOME"])
        done = whole_process(command, self.prefect_project, self.plan_env())
        planned = done["stdout"].count("\nstep  [")
        result = self._checked("cli_plan/dbnd", done, planned == n, f"{planned} of {n} steps planned")
        reused = re.search(r"would reuse (\d+) task run", done["stdout"])
        if result is not None:
            result["hits"] = int(reused.group(1)) if reused else None
        if (home / "server.pid").exists():  # a background server left by plan: stop it
            subprocess.run([str(Path(sys.executable).parent / "prefect"), "server", "stop"], capture_output=True,
                           env={**self.plan_env()}, timeout=60)
        started = [p.name for p in (home / "server.pid", home / "prefect.db") if p.exists()]
        if started or "temporary server" in done["stderr"]:  # the row says so (its target is then not met)
            self.log(f"  cli_plan/dbnd: `dbnd plan` started a Prefect server with PREFECT_API_URL unset "
                     f"({', '.join(started) or 'a temporary server'} in its PREFECT_HOME); it must start none")
            for name in started:
                (home / name).unlink(missing_ok=True)  # so that the next run's check is its own
        if result is not None:
            result["started_server"] = bool(started or "temporary server" in done["stderr"])
        return result

    def describe_original(self, n: int) -> dict[str, Any] | None:
        command = [str(dbnd_executable()), "run", CHAIN_ORIGINAL, "--set", f"chain.n={n}", "--describe"]
        done = whole_process(command, self.original_project, self.original_env())
        return self._checked("cli_plan/dbnd_original", done, "chain_dbnd_original.chain" in done["stderr"],
                             "no task graph printed")

    def _checked(self, label: str, done: dict[str, Any], ok: bool, what: str) -> dict[str, Any] | None:
        bad = [line for line in done["stdout"].splitlines() + done["stderr"].splitlines()
               if line.startswith("Traceback") or " ERROR " in line or "| ERROR" in line]
        if done["exit"] != 0 or not ok:
            problem = "timed out" if done["timed_out"] else f"exit {done['exit']}, {what}"
            self.error(f"{label}: {problem}\n{done['stderr'][-3000:]}")
            self.log(f"  {label}: FAILED ({problem})\n{done['stderr'][-3000:]}")
            return None
        server = done["server_cpu_s"]
        return {"seconds": done["seconds"], "peak_rss_mb": round(done["peak_rss_mb"], 1), "cpu_s": done["cpu_s"],
                "server_cpu_s": server, "cpu_with_server_s": done["cpu_s"] + (server or 0.0),
                "error_lines": len(bad)}

    # -- the measures

    def run(self, reps: int) -> None:
        self.prefect_project.mkdir(parents=True, exist_ok=True)
        self.original_project.mkdir(parents=True, exist_ok=True)
        self.skipped = ensure_dbnd_venv(self.log)
        if self.skipped:
            self.log(f"cli: SKIPPING the original DBND side: {self.skipped}")
        n = self.n
        self.log(f"cli: {reps} × dbnd run / plan of a {n}-task chain (dbnd_prefect"
                 f"{'' if self.skipped else ' vs original DBND 1.0.34'})")
        sides: dict[str, Callable[[], dict[str, Any] | None]] = {
            "dbnd": lambda: self.run_prefect(n)}
        if not self.skipped:
            sides["dbnd_original"] = lambda: self.run_original(n)
        # warm-up (page cache, .pyc files, project folders), not timed; dbnd_prefect's without --task-version
        # stores the versions that `dbnd plan` then finds and verifies (every step a hit)
        self.run_prefect(n, version=None)
        if not self.skipped:
            self.run_original(n)
        time.sleep(self.pause + (0 if self.quick else n / 1000))
        for rep in range(reps):
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for variant in order:
                result = sides[variant]()
                if result is not None:
                    self.record("cli_run", variant, result)
                time.sleep(self.pause + (0 if self.quick else n / 1000))
        plans: dict[str, Callable[[], dict[str, Any] | None]] = {"dbnd": lambda: self.plan_prefect(n)}
        if not self.skipped:
            plans["dbnd_original"] = lambda: self.describe_original(n)
        for rep in range(reps):
            order = list(plans) if rep % 2 == 0 else list(reversed(plans))
            for variant in order:
                result = plans[variant]()
                if result is not None:
                    self.record("cli_plan", variant, result)
