"""dbnd_prefect vs raw Prefect, side by side on one Prefect server: `make bench` (or `make bench-quick`).

    .venv/bin/python bench/run.py              # full suite, medians over --reps runs (default 5)
    .venv/bin/python bench/run.py --quick      # everything small, one run each: a smoke test
    .venv/bin/python bench/run.py --only tasks,empty --reps 3

Starts one `prefect server` on a free 127.0.0.1 port with a temporary PREFECT_HOME (or uses --api-url),
runs every measurement in a fresh subprocess (`bench/worker.py`), raw and dbnd variants alternating,
with a pause between runs so the server digests its events, then prints a markdown table and writes it
to bench/results/latest.md (and the per-run numbers to latest.json). The `cli` rows (bench/cli_rows.py) time
whole `dbnd run` / `dbnd plan` processes against the original DBND 1.0.34, which the suite installs once into
`.cache/bench-dbnd-venv` (bench/dbnd_venv.py). The `dask` rows (bench/dask_rows.py) start a `distributed`
scheduler and two workers; the `deployment` row (bench/deployment_run.py) a process work pool and a `prefect
worker`: both run against the suite's server, and `--quick` leaves them out unless `--only` names them.
With `--only`, the table has the rows of the named measures only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from report import REPO, load_average, machine_info, machine_lines, markdown_table  # noqa: E402
from cli_rows import CliBench  # noqa: E402
from system_rows import SystemBench  # noqa: E402
from rows import build_rows, measure_of, notes  # noqa: E402
from server import QUIET_ENV, prefect_server, temporary_home, wait_idle  # noqa: E402

RESULT_PREFIX = "BENCH_RESULT "
MEASURES = ("tasks", "chain", "empty", "parallel", "fanout", "frame_input", "record", "rerun", "import", "fingerprint",
            "cli", "system", "dask", "deployment")
SLOW_MEASURES = ("dask", "deployment")
HEAVY_MODULES = ("pandas", "pyarrow", "pyspark", "boto3", "botocore", "s3fs", "gcsfs", "adlfs", "azure",
                 "google.cloud", "numpy")


@dataclasses.dataclass
class Plan:
    """One measure: its variants, their parameters, and how many task runs one variant run makes."""

    measure: str
    variants: tuple[str, ...]
    params: dict[str, Any]
    task_runs: int = 0
    reps: int | None = None  # None: the suite's --reps


def plans(quick: bool) -> list[Plan]:
    if quick:
        return [
            # 40, not 10: a per-task time is (flow - empty flow) / n, and an empty flow's noise can exceed 10 tasks
            Plan("tasks", ("raw", "raw_persist", "raw_submit_persist", "dbnd", "dbnd_block", "dbnd_unversioned"),
             {"n": 40}, 50),
            Plan("chain", ("raw", "raw_persist", "raw_submit", "dbnd", "dbnd_unversioned"), {"n": 10}, 10),
            Plan("empty", ("raw", "dbnd"), {"calls": 2}),
            Plan("parallel", ("raw", "raw_submit", "dbnd"), {"seconds": 0.2}, 8),
            Plan("fanout", ("raw", "dbnd"), {"n": 50}, 55),
            Plan("frame_input", ("raw", "dbnd"), {"rows": 10_000}, 2),
            Plan("record", ("raw", "dbnd"), {"rows": 10_000}),
            Plan("rerun", ("raw", "dbnd"), {"n": 4, "work": 0.05, "rows": 1_000}, 5),
        ]
    return [
        Plan("tasks", ("raw", "raw_persist", "raw_submit_persist", "dbnd", "dbnd_block", "dbnd_unversioned"),
             {"n": 200}, 210),
        Plan("chain", ("raw", "raw_persist", "raw_submit", "dbnd", "dbnd_unversioned"), {"n": 100}, 100),
        Plan("empty", ("raw", "dbnd"), {"calls": 5}),
        Plan("parallel", ("raw", "raw_submit", "dbnd"), {"seconds": 1.0}, 8),
        Plan("fanout", ("raw", "dbnd"), {"n": 2000}, 2005),
        Plan("frame_input", ("raw", "dbnd"), {"rows": 1_000_000}, 2),
        Plan("record", ("raw", "dbnd"), {"rows": 10_000_000}, reps=3),
        Plan("rerun", ("raw", "dbnd"), {"n": 20, "work": 0.25, "rows": 100_000}, 21),
    ]


class Suite:
    """Runs workers against one server and collects their results by measure and variant."""

    def __init__(self, home: Path, api_url: str, quick: bool, pause: float, verbose: bool) -> None:
        self.home, self.quick, self.pause, self.verbose = home, quick, pause, verbose
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.errors: list[str] = []
        self.counter = 0
        self.env = {
            **os.environ, **QUIET_ENV,
            "PREFECT_API_URL": api_url,
            "PREFECT_HOME": str(home / "client-home"),
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
            "BENCH_SETTLE": str(pause),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        }
        for name in [k for k in self.env if k.startswith("DBND__")]:
            del self.env[name]  # the benchmark's own data roots only

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def rest(self, task_runs: int) -> None:
        # after 2,000 task runs the server digests events for several seconds: at 1 ms per task run the
        # next worker's first request (saving its records block) met 503 once
        time.sleep(self.pause + (0 if self.quick else task_runs / 400))
        wait_idle()

    def worker(self, measure: str, variant: str, params: dict[str, Any],
               data_root: Path | None = None) -> dict[str, Any] | None:
        """Run one measurement in a fresh process with its own working directory; its result or None."""
        self.counter += 1
        cwd = self.home / "runs" / f"{self.counter:03d}-{measure}-{variant}"
        cwd.mkdir(parents=True)
        env = {**self.env, "DBND__RUN__DATA_ROOT": str(data_root or cwd / "data")}
        command = [sys.executable, str(BENCH / "worker.py"), measure, variant, json.dumps(params)]
        return self._run(command, cwd, env, f"{measure}/{variant}", measure, variant)

    def _run(self, command: list[str], cwd: Path, env: dict[str, str], label: str, measure: str,
             variant: str, timeout: float = 1800, keep: bool = True) -> dict[str, Any] | None:
        try:
            out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.errors.append(f"{label}: timed out after {timeout:.0f}s")
            self.log(f"  {label}: TIMEOUT")
            return None
        lines = [line for line in out.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if out.returncode != 0 or not lines:
            self.errors.append(f"{label}: exit {out.returncode}\n{out.stderr[-3000:]}")
            self.log(f"  {label}: FAILED (exit {out.returncode})\n{out.stderr[-3000:]}")
            return None
        result = json.loads(lines[-1][len(RESULT_PREFIX):])
        if not keep:
            return result
        self.results.setdefault(measure, {}).setdefault(variant, []).append(result)
        if self.verbose:
            shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}
            self.log(f"  {label}: {shown}")
        return result

    def run_plan(self, plan: Plan, reps: int) -> None:
        self.log(f"{plan.measure}: {reps} × {', '.join(plan.variants)} {plan.params}")
        for rep in range(reps):
            order = plan.variants if rep % 2 == 0 else tuple(reversed(plan.variants))
            for variant in order:
                if plan.measure == "rerun":
                    self.run_rerun(variant, plan.params, rep)
                else:
                    self.worker(plan.measure, variant, plan.params)
                self.rest(plan.task_runs)

    def run_rerun(self, side: str, params: dict[str, Any], rep: int) -> None:
        """First run then re-run of the same chain, each in a fresh process, sharing a data folder."""
        shared = self.home / "shared" / f"rerun-{side}-{rep}"
        shared.mkdir(parents=True)
        params = {**params, "shared": str(shared)}
        first = self.worker("rerun", f"{side}_first", params, data_root=shared / "data")
        self.rest(params["n"])
        if first is not None:
            self.worker("rerun", f"{side}_rerun", params, data_root=shared / "data")

    def run_imports(self, reps: int) -> None:
        """Whole-process wall of importing each library's decorators, alternating; heavy modules loaded."""
        statements = {"raw": "from prefect import flow, task", "dbnd": "from dbnd_prefect import pipeline, task"}
        self.log(f"import: {reps} × {' / '.join(statements.values())}")
        cwd = self.home / "runs" / "import"
        cwd.mkdir(parents=True, exist_ok=True)
        for rep in range(reps):
            for variant in (("raw", "dbnd") if rep % 2 == 0 else ("dbnd", "raw")):
                start = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", statements[variant]], cwd=cwd, env=self.env,
                                     capture_output=True, text=True)
                seconds = time.perf_counter() - start
                if out.returncode != 0:
                    self.errors.append(f"{statements[variant]}: {out.stderr[-2000:]}")
                    continue
                self.results.setdefault("import", {}).setdefault(variant, []).append({"seconds": seconds})
                time.sleep(0.2)
        # the whole public API, as `from dbnd_prefect import *` loads it
        probe = (f"import sys, json\nfrom dbnd_prefect import *\nheavy = {HEAVY_MODULES!r}\n"
                 "loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in heavy))\n"
                 f"print({RESULT_PREFIX!r} + json.dumps({{'modules': loaded}}))\n")
        self._run([sys.executable, "-c", probe], cwd, self.env, "import/heavy-modules", "import", "heavy")

    def run_cli(self, reps: int) -> None:
        """Whole-process `dbnd run` / `dbnd plan` of a task chain vs the original DBND (bench/cli_rows.py)."""

        def record(measure: str, variant: str, result: dict[str, Any]) -> None:
            self.results.setdefault(measure, {}).setdefault(variant, []).append(result)
            if self.verbose:
                self.log(f"  {measure}/{variant}: {result}")

        cli = CliBench(self.home, self.env, self.quick, record, self.errors.append, self.log, self.pause)
        cli.run(reps)
        if cli.skipped:
            self.results.setdefault("cli_run", {})["skipped"] = [{"reason": cli.skipped}]

    def run_system(self, reps: int, n: int, work: int, large: int, baseline: Path | None = None,
                   variants: tuple[str, ...] = (), current: Path | None = None) -> None:
        """Whole-system cost (wall, client CPU, server CPU until idle) of a chain: raw script with and without
        persisted results, `dbnd run`, the original DBND's `dbnd run` (bench/system_rows.py)."""

        def record(measure: str, variant: str, result: dict[str, Any]) -> None:
            self.results.setdefault(measure, {}).setdefault(variant, []).append(result)
            if self.verbose:
                shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}
                self.log(f"  {measure}/{variant}: {shown}")

        system = SystemBench(self.home, self.env, self.quick, record, self.errors.append, self.log, self.pause,
                             n, work, large, baseline, variants, current)
        system.run(reps)
        if system.skipped:
            self.results.setdefault("system", {})["skipped"] = [{"reason": system.skipped}]

    def run_dask(self, reps: int) -> None:
        """bench/dask_rows.py against this server: it starts its own Dask cluster and alternates the variants."""
        n = 10 if self.quick else 100
        self.log(f"dask: {reps} × raw, raw_persist, dbnd, {n} tasks on a 2-worker cluster")
        command = [sys.executable, str(BENCH / "dask_rows.py"), "--json", "--api-url", self.env["PREFECT_API_URL"],
                   "--n", str(n), "--reps", str(reps)]
        found = self._script(command, "dask")
        if found is not None:
            self.results["dask"] = found
            hung = [f"dask/{v} run {i + 1}" for v, runs in found.items() for i, r in enumerate(runs) if r["exit_hung"]]
            if hung:  # a result was reported; the process then hung at exit: a finding, not a failed measure
                self.log(f"  did not exit within 60 s after the run (killed, py-spy dump in bench/results): {hung}")

    def run_deployment(self, reps: int) -> None:
        """bench/deployment_run.py against this server: its own process pool and `prefect worker`."""
        tasks = 2 if self.quick else 5
        self.log(f"deployment: {reps} × raw, dbnd `prefect deployment run` of a {tasks}-task pipeline")
        command = [sys.executable, str(BENCH / "deployment_run.py"), "--json", "--api-url",
                   self.env["PREFECT_API_URL"], "--reps", str(reps), "--tasks", str(tasks),
                   "--pause", str(self.pause)]
        found = self._script(command, "deployment")
        if found is not None:
            self.results["deployment"] = {
                variant: [{"seconds": s, "run_seconds": r}
                          for s, r in zip(found["seconds"][variant], found["run_seconds"][variant])]
                for variant in ("raw", "dbnd")}
            self.results["deployment"]["cached"] = [{"runs": found["dbnd_runs"],
                                                     "all_cached": found["dbnd_runs_all_cached"]}]

    def _script(self, command: list[str], measure: str) -> dict[str, Any] | None:
        """A bench script's `BENCH_RESULT {json}` (every run of every variant), or None when it failed."""
        cwd = self.home / "runs" / measure
        cwd.mkdir(parents=True, exist_ok=True)
        return self._run(command, cwd, self.env, measure, measure, "", timeout=3600, keep=False)

    def run_fingerprint(self, quick: bool) -> None:
        """Delegates to bench/bench_fingerprint.py's per-variant worker (one fresh process per variant)."""
        script = str(BENCH / "bench_fingerprint.py")
        rows = {"floats": 10_000 if quick else 10_000_000, "strings": 10_000 if quick else 1_000_000}
        rows["objects"] = rows["strings"]
        cases = [("floats", "prefect INPUTS key"), ("floats", "dbnd fingerprint_value"),
                 ("strings", "hash_pandas_object.sum"), ("strings", "dbnd fingerprint_value"),
                 ("objects", "hash_pandas_object.sum"), ("objects", "dbnd fingerprint_value")]
        self.log(f"fingerprint: {rows}")
        cwd = self.home / "runs" / "fingerprint"
        cwd.mkdir(parents=True, exist_ok=True)
        for dataset, variant in cases:
            reps = "1" if quick else "3"
            command = [sys.executable, "-c", _FINGERPRINT_SHIM, script, dataset, variant, str(rows[dataset]), reps]
            self._run(command, cwd, self.env, f"fingerprint/{dataset}/{variant}", f"fingerprint_{dataset}",
                      "raw" if "dbnd" not in variant else "dbnd")


# bench_fingerprint.py prints its worker's result as a bare JSON line; tag it like ours.
_FINGERPRINT_SHIM = (
    "import json, runpy, sys, io, contextlib\n"
    "script, *args = sys.argv[1:]\n"
    "sys.argv = [script, '--worker', *args]\n"
    "buffer = io.StringIO()\n"
    "with contextlib.redirect_stdout(buffer):\n"
    "    runpy.run_path(script, run_name='__main__')\n"
    "line = buffer.getvalue().strip().splitlines()[-1]\n"
    f"print({RESULT_PREFIX!r} + json.dumps(json.loads(line)))\n"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition (smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measure (default 5; quick 1)")
    parser.add_argument("--only", default="", help="comma-separated measures: tasks, chain, empty, import, parallel, "
                                                   "fanout, frame_input, record, rerun, fingerprint, cli, system, "
                                                   "dask, "
                                                   "deployment (--quick leaves the last two out unless named)")
    parser.add_argument("--system-n", type=int, default=None, help="tasks of the `system` chain (100; quick 5)")
    parser.add_argument("--system-work", type=int, default=20000,
                        help="squares each task of the `system` chain sums (20000: ~1 ms of CPU)")
    parser.add_argument("--system-large", type=int, default=None,
                        help="then one run of each variant on a chain this long (1000; quick 0: none)")
    parser.add_argument("--system-baseline", default=None, help="a folder holding an earlier `dbnd_prefect` "
                                                                "package: the `system` measure runs it too")
    parser.add_argument("--system-current", default=None, help="a folder holding the `dbnd_prefect` package the "
                                                               "`system` measure's `dbnd` variant runs (default: this one)")
    parser.add_argument("--system-variants", default="", help="the `system` variants to run (default all): raw, "
                                                               "raw_persist, dbnd, dbnd_before, dbnd_original")
    parser.add_argument("--api-url", default=None, help="use this Prefect API instead of starting a server")
    parser.add_argument("--pause", type=float, default=None, help="seconds between runs (default 2; quick 0.2)")
    parser.add_argument("--out", default=str(BENCH / "results" / "latest.md"), help="markdown file to write")
    parser.add_argument("--keep", action="store_true", help="keep the temporary PREFECT_HOME and data")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each run's numbers")
    args = parser.parse_args(argv)
    reps = args.reps or (1 if args.quick else 5)
    pause = args.pause if args.pause is not None else (0.2 if args.quick else 2.0)
    only = {m.strip() for m in args.only.split(",") if m.strip()}
    unknown = only - set(MEASURES)
    if unknown:
        parser.error(f"unknown measure(s) for --only: {', '.join(sorted(unknown))}; measures: {', '.join(MEASURES)}")
    # a cluster and a work-pool worker take minutes: the quick smoke run leaves them out unless named
    selected = only or (set(MEASURES) - set(SLOW_MEASURES) if args.quick else set(MEASURES))
    info = machine_info()
    info["load_start"] = load_average()
    started = time.perf_counter()

    with temporary_home(keep=args.keep) as home:
        if args.keep:
            print(f"PREFECT_HOME and data kept in {home}", file=sys.stderr)
        server = prefect_server(home) if args.api_url is None else _existing(args.api_url)
        with server as api_url:
            suite = Suite(home, api_url, args.quick, pause, args.verbose)
            for plan in plans(args.quick):
                if plan.measure in selected:
                    suite.run_plan(plan, plan.reps if (plan.reps and not args.reps and not args.quick) else reps)
            if "import" in selected:
                suite.run_imports(reps if args.quick else max(reps, 30))  # start-up wall drifts ±3%: many pairs
            if "fingerprint" in selected:
                suite.run_fingerprint(args.quick)
            if "cli" in selected:
                suite.run_cli(reps)
            if "system" in selected:
                suite.run_system(reps, args.system_n or (5 if args.quick else 100), args.system_work,
                                 args.system_large if args.system_large is not None else (0 if args.quick else 1000),
                                 Path(args.system_baseline).resolve() if args.system_baseline else None,
                                 tuple(v.strip() for v in args.system_variants.split(",") if v.strip()),
                                 Path(args.system_current).resolve() if args.system_current else None)
            if "dask" in selected:
                suite.run_dask(args.reps or (1 if args.quick else 3))  # 3: each run is ~100 task runs per variant
            if "deployment" in selected:
                suite.run_deployment(reps)

    info["load_end"] = load_average()
    rows = [row for row in build_rows(suite.results, args.quick, args.system_n, args.system_large)
            if measure_of(row.key) in selected]
    mode = "quick (smoke test sizes: numbers are not meaningful)" if args.quick else f"full, medians of {reps} runs"
    text = "\n\n".join([
        f"# dbnd_prefect vs raw Prefect — {mode}",
        markdown_table(rows),
        machine_lines(info),
        notes(suite.results, args.quick),
    ]) + "\n"
    if suite.errors:
        text += "\n## Errors\n\n" + "\n".join(f"- {e.splitlines()[0]}" for e in suite.errors) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    table = [{"key": r.key, "measure": r.measure, "unit": r.unit, "raw": r.raw, "dbnd": r.dbnd, "ratio": r.ratio,
              "target": r.target, "met": r.met} for r in rows]
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "rows": table, "results": suite.results,
                                                    "errors": suite.errors}, indent=1))
    print(f"written to {out} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 1 if suite.errors else 0


class _existing:
    """A context manager yielding an already running server's URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: Any) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
