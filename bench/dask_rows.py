"""Per-task cost of a dbnd pipeline on the Dask (or Ray) task runner vs the same raw Prefect tasks on
prefect-dask (prefect-ray).

    .venv/bin/python bench/dask_rows.py              # n=100 tasks, medians of 3 runs per variant
    .venv/bin/python bench/dask_rows.py --n 30 --reps 1
    .venv/bin/python bench/dask_rows.py --engine ray # a Ray head node (`ray start --head`, 2 CPUs) instead
    .venv/bin/python bench/dask_rows.py --api-url http://127.0.0.1:4200/api --json   # as bench/run.py runs it

Starts a Prefect server (throw-away PREFECT_HOME; or uses --api-url) and a `distributed` scheduler with two
worker processes on 127.0.0.1, then runs each variant in a fresh process, alternating: a flow of `n` trivial
tasks on the cluster, per-task time = (its wall - an empty flow's wall on the same runner) / n. The dbnd
pipeline gets the cluster from an environment profile (`task_runner = {type = "dask", address = ...}`) and
writes its outputs, manifests and cache records to a local data root (the workers share this machine's disk);
raw Prefect tasks persist nothing (`raw`) or their results to a shared folder (`raw_persist`, for context).
Raw flows run with the sync-flow heartbeat off, as dbnd_prefect runs its flows (and as bench/worker.py's raw
rows do). Each run also reports CPU per task: the cluster's (scheduler + workers) and the driver's during the
timed flow, and the Prefect server's over the measuring process's whole life (its exit included, when dbnd
sends the run's artifacts and lineage events). Prints a markdown row with the ratio dbnd / raw (target
≤ 1.1×), or with --json one `BENCH_RESULT {json}` line of every run's numbers. A measuring process that does
not exit within 60 s of its result is dumped with py-spy (when installed) and killed; the note says where.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
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

from cli_rows import cpu_seconds, listening_pid  # noqa: E402
from server import QUIET_ENV, free_port, prefect_server, temporary_home  # noqa: E402

RESULT_PREFIX = "DASK_BENCH_RESULT "
JSON_PREFIX = "BENCH_RESULT "  # what bench/run.py reads
TARGET = 1.1
VARIANTS = ("raw", "raw_persist", "dbnd")
EXIT_TIMEOUT = 60.0  # a measuring process that has not exited this long after reporting is killed (and noted)
HANG_DUMPS = BENCH / "results"  # py-spy dumps of such processes (git-ignored)


@contextlib.contextmanager
def dask_cluster(env: dict[str, str], workers: int = 2) -> Iterator[tuple[str, list[int]]]:
    """A scheduler and `workers` single-threaded worker processes on 127.0.0.1; yields the address and pids."""
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
            yield address, [proc.pid for proc in procs]
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


@contextlib.contextmanager
def ray_cluster(env: dict[str, str], cpus: int = 2) -> Iterator[tuple[str, list[int]]]:
    """A Ray head node on 127.0.0.1 (`ray start --head --block`, its own process group, every port free); yields
    its address and the pid of `ray start` (its processes are found through it when CPU is read)."""
    port = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    folder = tempfile.mkdtemp(prefix="dbnd-bench-ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    ports = [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
             f"--worker-port-list={','.join(str(free_port()) for _ in range(2 * cpus + 4))}",
             f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
             f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
             f"--ray-client-server-port={free_port()}"]
    log_path = Path(folder) / "head.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                                 f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats",
                                 f"--temp-dir={folder}", *ports], stdout=log, stderr=subprocess.STDOUT,
                                env={**env, "RAY_USAGE_STATS_ENABLED": "0"}, cwd=folder, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray start failed:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield f"127.0.0.1:{port}", [proc.pid]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _tree(pids: list[int]) -> list[int]:
    """`pids` and their live descendants (Ray starts its workers under the raylet)."""
    import psutil

    found = list(pids)
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            found += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    return found


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def measure(variant: str, n: int, start: int, data_root: str) -> dict[str, Any]:
    """In a fresh process: a 4-task flow and an empty flow (warm-up), an empty flow timed, then `n` tasks timed."""
    import flows_dask as f
    from worker import no_heartbeat

    if variant == "dbnd":
        from dbnd_prefect.config import config_context

        context: Any = config_context({
            "run.env": "bench_dask", "run.data_root": data_root,
            "env.bench_dask.task_runner": {"type": f.ENGINE, "address": f.ADDRESS},
        })
        run_many, run_empty = f.dbnd_many, f.dbnd_empty
    else:
        context = no_heartbeat()
        run_many = f.raw_many_persisted if variant == "raw_persist" else f.raw_many
        run_empty = f.raw_empty
    cluster = [int(pid) for pid in os.environ.get("DBND_BENCH_DASK_PIDS", "").split(",") if pid]
    with context:
        run_many(4, start - 4)  # warm-up: imports and first task runs in this process and on the workers
        run_empty()
        cluster = _tree(cluster)  # the workers started by now (Ray's), read before and after
        began = time.perf_counter()
        run_empty()
        empty = time.perf_counter() - began
        cluster_cpu, driver_cpu = _cpu(cluster), time.process_time()
        began = time.perf_counter()
        run_many(n, start)
        wall = time.perf_counter() - began
        driver_cpu, cluster_cpu = time.process_time() - driver_cpu, _cpu(cluster) - cluster_cpu
    return {"variant": variant, "n": n, "wall": wall, "empty": empty, "per_task_ms": (wall - empty) / n * 1000,
            "cluster_cpu_per_task_ms": cluster_cpu / n * 1000, "driver_cpu_per_task_ms": driver_cpu / n * 1000}


def run_variant(variant: str, n: int, start: int, data_root: str, env: dict[str, str],
                server_pid: int | None = None, dumps: Path | None = None) -> dict[str, Any]:
    """One measurement in a fresh process; `exit_seconds` is how long the process took to exit after it, and
    `server_cpu_per_task_ms` the server's CPU over the process's life per task run (warm-up included)."""
    argv = [sys.executable, str(Path(__file__)), "--variant", variant, "--n", str(n), "--start", str(start),
            "--data-root", data_root]
    server_cpu = cpu_seconds(server_pid)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=data_root)
        result = None
        for line in proc.stdout:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX):])
                break
        reported = time.perf_counter()
        dump = None
        try:
            proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            dump = _dump_stacks(proc.pid, dumps, variant)
            proc.kill()
            proc.wait()
        if result is None:
            err.seek(0)
            raise RuntimeError(f"{variant} run failed ({proc.returncode}):\n{err.read()[-3000:]}")
        result["exit_seconds"] = time.perf_counter() - reported
        result["exit_hung"] = proc.returncode != 0
        result["hang_stacks"] = dump
        after = cpu_seconds(server_pid)
        if server_cpu is not None and after is not None:
            result["server_cpu_per_task_ms"] = (after - server_cpu) / (n + 4) * 1000
        return result


def _dump_stacks(pid: int, folder: Path | None, variant: str) -> str | None:
    """py-spy's dump of a hung process's threads, written to `folder` (None without py-spy); its path."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None or folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"hang-{variant}-{pid}.txt"
    done = subprocess.run([spy, "dump", "--pid", str(pid), "--locals", "--native"], capture_output=True, text=True,
                          timeout=60)
    text = done.stdout + done.stderr
    gdb = shutil.which("gdb")
    if gdb is not None:  # C frames with their symbols: py-spy names no libc function
        native = subprocess.run([gdb, "-p", str(pid), "-batch", "-ex", "thread apply all bt 40"],
                                capture_output=True, text=True, timeout=120)
        text += "\n--- gdb ---\n" + native.stdout[-20000:] + native.stderr[-2000:]
    out.write_text(text)
    print(f"{variant} process {pid} did not exit: py-spy dump in {out}", file=sys.stderr, flush=True)
    return str(out)


def measure_all(api_url: str, home: Path, n: int, reps: int, log: Any = print,
                variants: tuple[str, ...] = VARIANTS, engine: str = "dask") -> dict[str, list[dict[str, Any]]]:
    """Each of `variants` `reps` times, alternating, on a cluster started here, against the server at `api_url`."""
    data_root = home / "data"
    data_root.mkdir(parents=True, exist_ok=True)
    (data_root / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home / "prefect-home"), "PREFECT_API_URL": api_url,
           "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONPATH": os.pathsep.join([str(BENCH), str(REPO)]),
           "DBND_BENCH_RESULTS": str(home / "raw-results")}
    for name in [k for k in env if k.startswith("DBND__")]:
        del env[name]  # the benchmark's own data root only
    server_pid = listening_pid(api_url)
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    env["DBND_BENCH_ENGINE"] = engine
    with (ray_cluster(env) if engine == "ray" else dask_cluster(env)) as (address, pids):
        env["DBND_BENCH_DASK_ADDRESS"] = address
        env["DBND_BENCH_DASK_PIDS"] = ",".join(map(str, pids))
        for rep in range(reps):
            for variant in (variants if rep % 2 == 0 else tuple(reversed(variants))):
                # new start values every repetition: dbnd computes every task (no reuse)
                start = 10 + rep * (n + 10)
                result = run_variant(variant, n, start, str(data_root), env, server_pid, HANG_DUMPS)
                log(f"  {engine}/{variant}: {result['per_task_ms']:.1f} ms/task, cluster CPU "
                    f"{result['cluster_cpu_per_task_ms']:.1f} ms/task, exit {result['exit_seconds']:.1f} s")
                results[variant].append(result)
                time.sleep(3)  # let the server digest the run's events
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--engine", choices=("dask", "ray"), default="dask")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--data-root", default="")
    parser.add_argument("--api-url", default=None, help="use this Prefect API instead of starting a server")
    parser.add_argument("--json", action="store_true", help="print every run's numbers as one BENCH_RESULT line")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: "
                                                                       + ", ".join(VARIANTS))
    args = parser.parse_args()
    variants = tuple(v for v in VARIANTS if v in args.variants.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: the server and the cluster stop too
    if args.variant:  # one measurement, in this fresh process
        print(RESULT_PREFIX + json.dumps(measure(args.variant, args.n, args.start, args.data_root)), flush=True)
        return 0

    log = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    with temporary_home() as home:
        server = prefect_server(home) if args.api_url is None else contextlib.nullcontext(args.api_url)
        with server as api_url:
            results = measure_all(api_url, home, args.n, args.reps, log, variants, args.engine)
    if args.json or variants != VARIANTS:
        print(JSON_PREFIX + json.dumps(results), flush=True)
        return 0
    raw, persisted, dbnd = (statistics.median(r["per_task_ms"] for r in results[v]) for v in VARIANTS)
    ratio = dbnd / raw
    print(json.dumps(results, indent=1))
    print("| measure | raw Prefect | dbnd_prefect | ratio | target | met? |")
    print("|---|---:|---:|---:|---|:---:|")
    cluster = "a Ray head node (2 CPUs; raw: prefect-ray" if args.engine == "ray" else \
        "a Dask cluster (2 worker processes; raw: prefect-dask"
    print(f"| per-task time, pipeline of {args.n} trivial tasks on {cluster} `.submit()`) | {raw:.3g} ms | {dbnd:.3g} ms | {ratio:.3g}× | ≤ {TARGET}× | "
          f"{'yes' if ratio <= TARGET else 'no'} |")
    print(f"| same, raw persisting results to a shared folder (context) | {persisted:.3g} ms | {dbnd:.3g} ms | "
          f"{dbnd / persisted:.3g}× | — | — |")
    for field, what in (("cluster_cpu_per_task_ms", "cluster CPU"), ("driver_cpu_per_task_ms", "driver CPU"),
                        ("server_cpu_per_task_ms", "server CPU"), ("exit_seconds", "exit after the run (s)")):
        values = {v: statistics.median(r.get(field) or 0.0 for r in results[v]) for v in VARIANTS}
        print(f"{what}: " + ", ".join(f"{v} {values[v]:.1f}" for v in VARIANTS))
    print(f"ratio dbnd/raw per task on {args.engine}: {ratio:.3f}")
    hung = [f"{variant} run {i + 1}" + (f" (stacks: {r['hang_stacks']})" if r.get("hang_stacks") else "")
            for variant, runs in results.items() for i, r in enumerate(runs) if r["exit_hung"]]
    if hung:
        print(f"note: did not exit within {EXIT_TIMEOUT:.0f} s after the run (killed): {', '.join(hung)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
