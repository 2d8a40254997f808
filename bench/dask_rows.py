"""Per-task cost of a dbnd pipeline on the Dask task runner vs the same raw Prefect tasks on prefect-dask.

    .venv/bin/python bench/dask_rows.py              # n=100 tasks, medians of 3 runs per variant
    .venv/bin/python bench/dask_rows.py --n 30 --reps 1

Starts a Prefect server (throw-away PREFECT_HOME) and a `distributed` scheduler with two worker processes
on 127.0.0.1, then runs each variant in a fresh process, alternating: a flow of `n` trivial tasks on the
cluster, per-task time = (its wall - an empty flow's wall on the same runner) / n. The dbnd pipeline gets the
cluster from an environment profile (`task_runner = {type = "dask", address = ...}`) and writes its outputs,
manifests and cache records to a local data root (the workers share this machine's disk); raw Prefect tasks
persist nothing (`raw`) or their results to a shared folder (`raw_persist`, for context). Prints a markdown row with the ratio dbnd / raw (target ≤ 1.1×) and everything else as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from server import QUIET_ENV, free_port, prefect_server, temporary_home  # noqa: E402

RESULT_PREFIX = "DASK_BENCH_RESULT "
TARGET = 1.1
VARIANTS = ("raw", "raw_persist", "dbnd")
EXIT_TIMEOUT = 60.0  # a measuring process that has not exited this long after reporting is killed (and noted)


@contextlib.contextmanager
def dask_cluster(env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """A scheduler and `workers` single-threaded worker processes on 127.0.0.1; yields the address."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="dbnd-bench-dask-") as folder:
        log = open(Path(folder) / "dask.log", "wb")
        try:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                 "--no-dashboard", "--no-show"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
                start_new_session=True))
            for i in range(workers):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", f"bench-{i}",
                     "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard", "--no-nanny",
                     "--local-directory", folder], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
                    start_new_session=True))
            deadline = time.monotonic() + 90
            while True:
                try:
                    with Client(address, timeout=5) as client:
                        client.wait_for_workers(workers, timeout=60)
                    break
                except (OSError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield address
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


def measure(variant: str, n: int, start: int, data_root: str) -> dict[str, Any]:
    """In a fresh process: a 4-task flow and an empty flow (warm-up), an empty flow timed, then `n` tasks timed."""
    import flows_dask as f

    if variant == "dbnd":
        from dbnd_prefect.config import config_context

        context: Any = config_context({
            "run.env": "bench_dask", "run.data_root": data_root,
            "env.bench_dask.task_runner": {"type": "dask", "address": f.ADDRESS},
        })
        run_many, run_empty = f.dbnd_many, f.dbnd_empty
    else:
        context = contextlib.nullcontext()
        run_many = f.raw_many_persisted if variant == "raw_persist" else f.raw_many
        run_empty = f.raw_empty
    with context:
        run_many(4, start - 4)  # warm-up: imports and first task runs in this process and on the workers
        run_empty()
        began = time.perf_counter()
        run_empty()
        empty = time.perf_counter() - began
        began = time.perf_counter()
        run_many(n, start)
        wall = time.perf_counter() - began
    return {"variant": variant, "n": n, "wall": wall, "empty": empty, "per_task_ms": (wall - empty) / n * 1000}


def run_variant(variant: str, n: int, start: int, data_root: str, env: dict[str, str]) -> dict[str, Any]:
    """One measurement in a fresh process; `exit_seconds` is how long the process took to exit after it."""
    argv = [sys.executable, str(Path(__file__)), "--variant", variant, "--n", str(n), "--start", str(start),
            "--data-root", data_root]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=data_root)
        result = None
        for line in proc.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
                break
        reported = time.perf_counter()
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if result is None:
            err.seek(0)
            raise RuntimeError(f"{variant} run failed ({proc.returncode}):\n{err.read()[-3000:]}")
        result["exit_seconds"] = time.perf_counter() - reported
        result["exit_hung"] = proc.returncode != 0
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--data-root", default="")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the server and the cluster stop too
    if args.variant:  # one measurement, in this fresh process
        print(RESULT_PREFIX + json.dumps(measure(args.variant, args.n, args.start, args.data_root)), flush=True)
        return 0

    with temporary_home() as home, prefect_server(home) as api_url:
        data_root = home / "data"
        data_root.mkdir()
        (data_root / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
        env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url,
               "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)]),
               "DBND_BENCH_RESULTS": str(home / "raw-results")}
        with dask_cluster(env) as address:
            env["DBND_BENCH_DASK_ADDRESS"] = address
            results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
            for rep in range(args.reps):
                for variant in VARIANTS:
                    # new start values every repetition: dbnd computes every task (no reuse)
                    start = 10 + rep * (args.n + 10)
                    results[variant].append(run_variant(variant, args.n, start, str(data_root), env))
                    time.sleep(3)  # let the server digest the run's events
    raw, persisted, dbnd = (statistics.median(r["per_task_ms"] for r in results[v]) for v in VARIANTS)
    ratio = dbnd / raw
    print(json.dumps(results, indent=1))
    print("| measure | raw Prefect | dbnd_prefect | ratio | target | met? |")
    print("|---|---:|---:|---:|---|:---:|")
    print(f"| per-task time, pipeline of {args.n} trivial tasks on a Dask cluster (2 worker processes; raw: "
          f"prefect-dask `.submit()`) | {raw:.3g} ms | {dbnd:.3g} ms | {ratio:.3g}× | ≤ {TARGET}× | "
          f"{'yes' if ratio <= TARGET else 'no'} |")
    print(f"| same, raw persisting results to a shared folder (context) | {persisted:.3g} ms | {dbnd:.3g} ms | "
          f"{dbnd / persisted:.3g}× | — | — |")
    print(f"ratio dbnd/raw per task on Dask: {ratio:.3f}")
    hung = [f"{variant} run {i + 1}" for variant, runs in results.items() for i, r in enumerate(runs) if r["exit_hung"]]
    if hung:
        print(f"note: did not exit within {EXIT_TIMEOUT:.0f} s after the run (killed): {', '.join(hung)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
