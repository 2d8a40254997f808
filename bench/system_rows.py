"""Whole-system cost of one run of a chain of computing tasks (`bench/run.py --only system`).

Four ways to run the same `n`-task chain, each task on the previous task's output and each summing `work`
squares, alternating, one fresh process each, against one Prefect server:

- `raw`: a raw Prefect script (bench/chain_raw_script.py), task results not persisted;
- `raw_persist`: the same script persisting every task's result to a Path;
- `dbnd`: `dbnd run chain_dbnd_prefect.chain --task-version now` (outputs, manifests, cache records, the UI's
  artifacts and lineage events);
- `dbnd_original`: the original DBND 1.0.34's `dbnd run` (bench/dbnd_venv.py), its local in-process executor;
- `dbnd_before` (with `--system-baseline DIR`): `dbnd run` with the `dbnd_prefect` package found in DIR (a copy of
  an earlier version), to compare a change before and after in one run; `--system-current DIR` runs the `dbnd`
  variant from a copy too (a frozen working tree, while the repository keeps changing).

For each run: wall and client CPU of the whole process (`wait4`: the process and the children it reaped), and the
CPU the Prefect server's process tree (`/proc/<pid>/stat` utime+stime+cutime+cstime of the server and every
descendant) used from the start of the run until it is idle again, that is until its CPU stays flat for
`FLAT_SECONDS`; the server's idle rate, measured just before the run, is taken off. The original DBND uses no
server: its server CPU is what the idle server did meanwhile (≈ 0).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from cli_rows import listening_pid, whole_process
from dbnd_venv import VENV, dbnd_executable, ensure_dbnd_venv

BENCH = Path(__file__).resolve().parent
FLAT_SECONDS = 1.5  # the server is idle again once its CPU has grown by less than FLAT_SHARE of a core for this long
FLAT_SHARE = 0.08  # an idle Prefect 3.9 server uses 2-4% of a core (its services' loops)
SAMPLE = 0.25
SETTLE_TIMEOUT = 45.0


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system, with reaped children's) of process `root` and all its live descendants."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                stats[int(entry)] = fields
                parents[int(entry)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier.extend(children)
    tick = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(stats[p][i]) for i in (11, 12, 13, 14)) / tick for p in tree if p in stats)


def settle(root: int | None, timeout: float = SETTLE_TIMEOUT) -> tuple[float, float, float]:
    """Wait until the server's CPU stays flat for FLAT_SECONDS; (when it became flat (monotonic), its CPU then,
    its CPU rate over the flat window in cores)."""
    if root is None:
        now = time.monotonic()
        return now, 0.0, 0.0
    samples = [(time.monotonic(), tree_cpu_seconds(root))]
    began = samples[0][0]
    while True:
        time.sleep(SAMPLE)
        samples.append((time.monotonic(), tree_cpu_seconds(root)))
        now, cpu = samples[-1]
        window = [s for s in samples if s[0] >= now - FLAT_SECONDS - 1e-6]
        start_t, start_cpu = window[0]
        if now - start_t >= FLAT_SECONDS - SAMPLE / 2 and cpu - start_cpu <= FLAT_SHARE * (now - start_t):
            return start_t, start_cpu, (cpu - start_cpu) / (now - start_t)
        if now - began > timeout:
            return now, cpu, 0.0


class SystemBench:
    """The `system` measure of one suite run; results go to `record(measure, variant, result)`. With `large`,
    one more run of each variant but `raw` on a chain of `large` tasks (`system_large`)."""

    def __init__(self, home: Path, prefect_env: dict[str, str], quick: bool,
                 record: Callable[[str, str, dict[str, Any]], None], error: Callable[[str], None],
                 log: Callable[[str], None], pause: float, n: int, work: int, large: int,
                 baseline: Path | None = None, only: tuple[str, ...] = (), current: Path | None = None) -> None:
        self.home, self.quick, self.record, self.error, self.log, self.pause = home, quick, record, error, log, pause
        self.n, self.work, self.large, self.baseline, self.only = n, work, large, baseline, only
        self.current = current
        bench_path = os.pathsep.join(p for p in (str(BENCH), prefect_env.get("PYTHONPATH")) if p)
        self.prefect_env = {**prefect_env, "PYTHONPATH": bench_path}
        self.folder = home / "system"
        self.prefect_dbnd = str(Path(sys.executable).parent / "dbnd")
        self.skipped: str | None = None
        group = int(os.environ.get("BENCH_SERVER_PGID") or 0)  # bench/server.py's server (its whole tree)
        self.server_pid = group or listening_pid(prefect_env.get("PREFECT_API_URL"))

    def original_env(self, project: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_", "DBND", "VIRTUAL_ENV", "PYTHON"))}
        return {**env, "DBND_HOME": str(project), "PYTHONPATH": str(BENCH),
                "PATH": os.pathsep.join([str(VENV / "bin"), env.get("PATH", "")])}

    def command(self, variant: str, n: int, cwd: Path) -> tuple[list[str], dict[str, str]]:
        if variant in ("raw", "raw_persist"):
            command = [sys.executable, str(BENCH / "chain_raw_script.py"), "--n", str(n), "--work", str(self.work)]
            return command + (["--persist", str(cwd / "results")] if variant == "raw_persist" else []), \
                {**self.prefect_env, "DBND__RUN__DATA_ROOT": str(cwd / "data")}
        if variant in ("dbnd", "dbnd_before"):
            env = {**self.prefect_env, "DBND__RUN__DATA_ROOT": str(cwd / "data")}
            copy = self.baseline if variant == "dbnd_before" else self.current
            if copy is not None:  # that package first on the path (the cwd is not the repository)
                env["PYTHONPATH"] = os.pathsep.join([str(copy), str(BENCH)])
            return [self.prefect_dbnd, "run", "chain_dbnd_prefect.chain", "--set", f"chain.n={n}", "--set",
                    f"chain.work={self.work}", "--task-version", "now"], env
        return [str(dbnd_executable()), "run", "chain_dbnd_original.chain", "--set", f"chain.n={n}", "--set",
                f"chain.work={self.work}", "--task-version", "now"], self.original_env(cwd)

    def completed(self, variant: str, done: dict[str, Any], n: int) -> tuple[bool, str]:
        if variant in ("raw", "raw_persist"):
            return f"steps: {n}" in done["stdout"], "the flow did not return"
        if variant in ("dbnd", "dbnd_before"):
            count = done["stdout"].count("step: Completed")
            return count == n, f"{count} of {n} steps completed"
        count = sum(1 for line in done["stderr"].splitlines()
                    if " - Task step__" in line and "has been completed!" in line)
        return count == n and "successfully executed" in done["stderr"], f"{count} of {n} steps completed"

    def one(self, variant: str, n: int, project: Path | None = None) -> dict[str, Any] | None:
        """One run of `variant` on an `n`-task chain, with the server's CPU until it is idle again."""
        cwd = project or self.folder / variant  # one project folder per side, as a user's
        cwd.mkdir(parents=True, exist_ok=True)
        command, env = self.command(variant, n, cwd)
        timeout = 2.0 if self.quick else SETTLE_TIMEOUT + n / 10  # quick: a smoke test, the numbers mean nothing
        _, _, idle_rate = settle(self.server_pid, timeout)  # idle before, and how much CPU the idle server uses
        began = time.monotonic()
        server_before = tree_cpu_seconds(self.server_pid) if self.server_pid else 0.0
        done = whole_process(command, cwd, env, timeout=1800)
        ended = time.monotonic()
        flat_at, server_after, _ = settle(self.server_pid, timeout)
        ok, what = self.completed(variant, done, n)
        if done["exit"] != 0 or not ok:
            problem = "timed out" if done["timed_out"] else f"exit {done['exit']}, {what}"
            self.error(f"system/{variant} (n={n}): {problem}\n{done['stderr'][-3000:]}")
            self.log(f"  system/{variant} (n={n}): FAILED ({problem})\n{done['stderr'][-3000:]}")
            return None
        server = max(0.0, server_after - server_before - idle_rate * (flat_at - began)) if self.server_pid else None
        result = {"n": n, "seconds": done["seconds"], "client_cpu_s": done["cpu_s"], "server_cpu_s": server,
                  "cpu_s": done["cpu_s"] + (server or 0.0), "server_busy_after_s": max(0.0, flat_at - ended),
                  "server_idle_rate": idle_rate, "peak_rss_mb": round(done["peak_rss_mb"], 1)}
        for field, name in (("seconds", "wall"), ("client_cpu_s", "client_cpu"), ("server_cpu_s", "server_cpu"),
                            ("cpu_s", "cpu")):
            if result[field] is not None:
                result[f"{name}_ms_per_task"] = result[field] * 1000 / n
        return result

    def run(self, reps: int) -> None:
        self.skipped = ensure_dbnd_venv(self.log)
        if self.skipped:
            self.log(f"system: SKIPPING the original DBND side: {self.skipped}")
        variants = ["raw", "raw_persist", "dbnd"] + (["dbnd_before"] if self.baseline else []) + \
            ([] if self.skipped else ["dbnd_original"])
        variants = [v for v in variants if not self.only or v in self.only]
        self.log(f"system: {reps} × {', '.join(variants)} on a {self.n}-task chain (work {self.work})"
                 + (f", then 1 × each on {self.large} tasks" if self.large else ""))
        if not self.server_pid:
            self.log("  system: the Prefect server's process is unknown: its CPU is left out")
        for variant in variants if not self.quick else ():  # warm-up: page cache, .pyc files, the server's first
            self.one(variant, min(self.n, 10))                # flow and task (the smoke test goes without)
        for rep in range(reps):
            for variant in (variants if rep % 2 == 0 else list(reversed(variants))):
                result = self.one(variant, self.n)
                if result is not None:
                    self.record("system", variant, result)
                time.sleep(self.pause)
        if self.large:  # the raw script not persisting is left out: the persisting one is the target's baseline
            for variant in [v for v in variants if v != "raw"]:
                result = self.one(variant, self.large)
                if result is not None:
                    self.record("system_large", variant, result)
                time.sleep(self.pause)


def _med(results: dict[str, Any], measure: str, variant: str, field: str) -> float | None:
    import statistics

    values = [r[field] for r in results.get(measure, {}).get(variant, []) if r.get(field) is not None]
    return statistics.median(values) if values else None


SYSTEM_KEYS = ("system_wall", "system_cpu", "system_original", "system_raw", "system_raw_cpu", "system_client",
               "system_server")
SYSTEM_LARGE_KEYS = ("system_large_wall", "system_large_cpu", "system_before", "system_before_cpu")


def system_rows(results: dict[str, Any], n: int, large: int, quick: bool) -> list[Any]:
    """The rows of the `system` measure: `dbnd run` vs the raw script persisting results (the targets), vs the
    original DBND, and Prefect's own floor (the raw script not persisting) beside them."""
    from report import Row, fmt

    m = lambda variant, field="seconds", measure="system": _med(results, measure, variant, field)  # noqa: E731
    skipped = (results.get("system", {}).get("skipped") or [{}])[0].get("reason")
    original = f"skipped: {skipped}" if skipped else ("" if m("dbnd_original") is not None else "not run")

    def split(variant: str, measure: str = "system") -> str:
        return (f"client {fmt(m(variant, 'client_cpu_s', measure), 's')} + server "
                f"{fmt(m(variant, 'server_cpu_s', measure), 's')}")

    chain = f"{n}-task chain of computing tasks"
    rows = [
        Row("system_wall", f"{chain}, whole process wall: `dbnd run` vs a raw Prefect script persisting results",
            m("raw_persist"), m("dbnd"), "s", "≤ 1.10×", lambda r: r.ratio <= 1.10,
            raw_note=f"not persisting {fmt(m('raw'), 's')}"),
        Row("system_cpu", "same, CPU: the client process + the Prefect server until it is idle again",
            m("raw_persist", "cpu_s"), m("dbnd", "cpu_s"), "s", "≤ 1.15×", lambda r: r.ratio <= 1.15,
            raw_note=split("raw_persist"), dbnd_note=split("dbnd")),
        Row("system_original", "same, wall: `dbnd run` vs the original DBND 1.0.34's `dbnd run` (local executor, "
            "no server)", m("dbnd_original"), m("dbnd"), "s", "≤ 1.0×", lambda r: r.ratio <= 1.0,
            raw_note=original or f"CPU {fmt(m('dbnd_original', 'client_cpu_s'), 's')}"),
        Row("system_raw", "same, wall, Prefect's floor: `dbnd run` vs the raw script not persisting (context)",
            m("raw"), m("dbnd"), "s", raw_note=f"persisting {fmt(m('raw_persist'), 's')}"),
        Row("system_raw_cpu", "same, CPU client + server, vs the raw script not persisting (context)",
            m("raw", "cpu_s"), m("dbnd", "cpu_s"), "s", raw_note=split("raw")),
        Row("system_client", "same, client CPU per task, vs the raw script persisting (context)",
            m("raw_persist", "client_cpu_ms_per_task"), m("dbnd", "client_cpu_ms_per_task"), "ms",
            raw_note=f"not persisting {fmt(m('raw', 'client_cpu_ms_per_task'), 'ms')}"),
        Row("system_server", "same, Prefect server CPU per task, vs the raw script persisting (context)",
            m("raw_persist", "server_cpu_ms_per_task"), m("dbnd", "server_cpu_ms_per_task"), "ms",
            raw_note=f"not persisting {fmt(m('raw', 'server_cpu_ms_per_task'), 'ms')}"),
    ]
    if not quick and large:
        big = "system_large"
        rows += [
            Row("system_large_wall", f"{large:,}-task chain, wall per task (one run each): `dbnd run` vs the raw "
                "script persisting", m("raw_persist", "wall_ms_per_task", big), m("dbnd", "wall_ms_per_task", big),
                "ms", raw_note=f"not persisting {fmt(m('raw', 'wall_ms_per_task', big), 'ms')}",
                dbnd_note=f"original DBND {fmt(m('dbnd_original', 'wall_ms_per_task', big), 'ms')}"),
            Row("system_large_cpu", "same, CPU per task, client + server", m("raw_persist", "cpu_ms_per_task", big),
                m("dbnd", "cpu_ms_per_task", big), "ms",
                raw_note=f"client {fmt(m('raw_persist', 'client_cpu_ms_per_task', big), 'ms')} + server "
                         f"{fmt(m('raw_persist', 'server_cpu_ms_per_task', big), 'ms')}",
                dbnd_note=f"client {fmt(m('dbnd', 'client_cpu_ms_per_task', big), 'ms')} + server "
                          f"{fmt(m('dbnd', 'server_cpu_ms_per_task', big), 'ms')}"),
        ]
    if results.get("system", {}).get("dbnd_before"):  # --system-baseline: this change, before and after
        rows += [
            Row("system_before", "same 100-task chain, wall: `dbnd run` now vs before this change (raw column: "
                "before)", m("dbnd_before"), m("dbnd"), "s"),
            Row("system_before_cpu", "same, CPU client + server: now vs before", m("dbnd_before", "cpu_s"),
                m("dbnd", "cpu_s"), "s", raw_note=split("dbnd_before"), dbnd_note=split("dbnd")),
        ]
    return rows


def system_table(results: dict[str, Any]) -> str:
    """Every variant's medians per task (ms): wall, client CPU, server CPU, and how long the server stayed busy;
    list items, not a table (the report's one table is the rows')."""
    from report import fmt

    lines = ["System per task (medians, ms per task: wall / client CPU / server CPU; server busy after the process):"]
    for measure in ("system", "system_large"):
        for variant in ("raw", "raw_persist", "dbnd", "dbnd_before", "dbnd_original"):
            runs = results.get(measure, {}).get(variant, [])
            if not runs:
                continue
            m = lambda field: _med(results, measure, variant, field)  # noqa: E731
            lines.append(f"- {runs[0]['n']:,} tasks, {variant} ({len(runs)} runs): {fmt(m('wall_ms_per_task'))} / "
                         f"{fmt(m('client_cpu_ms_per_task'))} / {fmt(m('server_cpu_ms_per_task'))}; "
                         f"{fmt(m('server_busy_after_s'), 's')}")
    for variant in ("raw", "raw_persist", "dbnd", "dbnd_before", "dbnd_original"):  # what one more task costs
        small, big = results.get("system", {}).get(variant, []), results.get("system_large", {}).get(variant, [])
        if not small or not big or big[0]["n"] == small[0]["n"]:
            continue
        extra = big[0]["n"] - small[0]["n"]

        def marginal(field: str) -> str:
            low, high = _med(results, "system", variant, field), _med(results, "system_large", variant, field)
            return "–" if low is None or high is None else fmt((high - low) * 1000 / extra)

        lines.append(f"- each task past {small[0]['n']:,} (({big[0]['n']:,}-task run − {small[0]['n']:,}-task run) / "
                     f"{extra:,}), {variant}: {marginal('seconds')} / {marginal('client_cpu_s')} / "
                     f"{marginal('server_cpu_s')}")
    return "\n".join(lines)
