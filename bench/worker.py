"""One benchmark measurement in a fresh process: `python bench/worker.py MEASURE VARIANT PARAMS_JSON`.

Prints `BENCH_RESULT {json}` as its last line. The orchestrator (`bench/run.py`) sets the environment:
PREFECT_API_URL of the shared server, PREFECT_HOME, and for dbnd variants DBND__RUN__DATA_ROOT. Raw
variants import only Prefect (and pandas where the measure moves DataFrames), never dbnd_prefect, so
that process-level numbers (peak RSS) are each library's own. Every variant first runs a small warm-up
of the same kind, so one-time costs (lazy imports, API client start) are not what is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

MEASURES: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {}
RESULT_PREFIX = "BENCH_RESULT "


def measure(name: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def register(func: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        MEASURES[name] = func
        return func

    return register


def timed(func: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = func(*args)
    return time.perf_counter() - start, value


def cpu_timed(func: Callable[..., Any], *args: Any) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds (all threads), and the value."""
    cpu = time.process_time()
    wall, value = timed(func, *args)
    return wall, time.process_time() - cpu, value


def settle() -> None:
    """Let the server digest the warm-up's events: right after a burst, Prefect's SQLite server answers
    `POST /flow_runs/` with 503 (database is locked) and the client retries only after ~2 s. Then wait until
    the server is idle: a run timed while it still digests earlier runs measures their cost, not its own."""
    from server import wait_idle

    time.sleep(float(os.environ.get("BENCH_SETTLE", "2")))
    wait_idle()


@contextlib.contextmanager
def no_heartbeat() -> Iterator[None]:
    """Raw sync flows without the ≤1 s heartbeat join at exit, as dbnd_prefect runs them outside deployments.

    Used for every raw variant except the empty-flow measure, whose point is that wait: it makes raw
    Prefect faster and its timings steadier, so ratios against it are conservative.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def scratch() -> Path:
    """This process's own scratch folder (the orchestrator runs each worker in a fresh working directory)."""
    path = Path.cwd() / "scratch"
    path.mkdir(exist_ok=True)
    return path


@measure("tasks")
def many_tasks(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """A flow of `n` trivial tasks; per-task time = (its wall - an empty flow's wall) / n, CPU likewise.

    raw: direct calls; raw_persist: direct calls persisting results to a Path; raw_submit_persist:
    `.submit()` to the thread pool and persisted to a Path (what dbnd does with every task call);
    dbnd_block: dbnd with a saved LocalFileSystem block as data root; dbnd_unversioned: `versioned=False`.
    """
    n = p["n"]
    if variant.startswith("dbnd"):
        import flows_dbnd as f

        run_many = f.d_many_glue if variant == "dbnd_unversioned" else f.d_many_tasks
        run_empty = f.d_empty
        context: Any = contextlib.nullcontext()
        if variant == "dbnd_block":  # a saved LocalFileSystem block as the data root, loaded once per run
            from prefect.filesystems import LocalFileSystem

            from dbnd_prefect.config import config_context

            LocalFileSystem(basepath=str(scratch() / "block-root")).save("dbnd-bench-root", overwrite=True)
            context = config_context({"run.storage_block": "local-file-system/dbnd-bench-root"})
    else:
        import flows_raw as f

        run_many = f.many_tasks_submitted if variant == "raw_submit_persist" else f.many_tasks
        run_empty = f.empty_flow
        if variant in ("raw_persist", "raw_submit_persist"):
            f.trivial = f.trivial.with_options(persist_result=True, result_storage=scratch() / "results")
        context = no_heartbeat()
    with context:
        run_many(5, -1000)  # warm-up, with inputs the timed run does not reuse
        run_empty()
        settle()
        empties = [cpu_timed(run_empty) for _ in range(3)]
        settle()
        seconds, cpu, _ = cpu_timed(run_many, n, 0)
    empty = statistics.median(e[0] for e in empties)
    empty_cpu = statistics.median(e[1] for e in empties)
    return {"seconds": seconds, "empty_seconds": empty, "per_task_ms": (seconds - empty) / n * 1000,
            "cpu_per_task_ms": (cpu - empty_cpu) / n * 1000}


@measure("chain")
def task_chain(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """A flow of `n` trivial tasks, each on the previous task's output: its wall (the median of `runs` timed runs;
    the suite times one per process, as a second 100-task run meets the server still digesting the first).

    raw: direct calls; raw_persist: direct calls persisting results to a Path; raw_submit: `.submit()`, each
    task given the previous task's future; dbnd: versioned tasks; dbnd_unversioned: `versioned=False` tasks.
    Every timed run starts from another value, so nothing is reused.
    """
    n, runs = p["n"], p.get("runs", 1)
    if variant.startswith("dbnd"):
        import flows_dbnd as f

        call = f.d_chain_glue if variant == "dbnd_unversioned" else f.d_chain
        context: Any = contextlib.nullcontext()
    else:
        import flows_raw as f

        call = f.chain_submitted if variant == "raw_submit" else f.chain
        if variant == "raw_persist":
            f.trivial = f.trivial.with_options(persist_result=True, result_storage=scratch() / "results")
        context = no_heartbeat()
    walls, cpus = [], []
    with context:
        call(5, -1000)  # warm-up, with inputs the timed runs do not reuse
        for run in range(runs):
            settle()
            start = (run + 1) * 1_000_000
            wall, cpu, value = cpu_timed(call, n, start)
            assert value == start + n, (value, start + n)
            walls.append(wall)
            cpus.append(cpu)
    seconds = statistics.median(walls)
    return {"seconds": seconds, "per_task_ms": seconds / n * 1000,
            "cpu_per_task_ms": statistics.median(cpus) / n * 1000, "all": walls}


@measure("empty")
def empty_call(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """Wall of an empty sync flow call (raw: Prefect defaults, heartbeat included)."""
    if variant == "dbnd":
        import flows_dbnd as f

        call = f.d_empty
    else:
        import flows_raw as f

        call = f.empty_flow
    call()
    settle()
    times = [timed(call)[0] for _ in range(p["calls"])]
    return {"seconds": statistics.median(times), "all": times}


@measure("parallel")
def four_sleepers(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """Four independent tasks of `seconds` each in one flow: wall time."""
    seconds = p["seconds"]
    if variant == "dbnd":
        import flows_dbnd as f

        f.d_four_sleepers(0.0)
        settle()
        wall, value = timed(f.d_four_sleepers, seconds)
    else:
        import flows_raw as f

        call = f.four_sleepers_submitted if variant == "raw_submit" else f.four_sleepers_direct
        with no_heartbeat():
            call(0.0)
            settle()
            wall, value = timed(call, seconds)
    assert list(value) == [0, 1, 2, 3], value
    return {"seconds": wall}


def _reset_peak_rss() -> float | None:
    """Reset the kernel's peak-RSS mark to the current RSS; the current RSS in MB (None if unsupported)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return _status_mb("VmRSS")
    except OSError:
        return None


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@measure("fanout")
def fan_out(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """`n` trivial tasks at once (raw: `.map`; dbnd: a list of calls): time per task and peak RSS."""
    n = p["n"]
    if variant == "dbnd":
        import flows_dbnd as f

        call, context = f.d_fan_out, contextlib.nullcontext()
    else:
        import flows_raw as f

        call, context = f.mapped_tasks, no_heartbeat()
    with context:
        call(5, -1000)
        settle()
        before = _reset_peak_rss()
        seconds, cpu, value = cpu_timed(call, n, 0)
    assert len(value) == n and value[-1] == n, (len(value), value[-1:])
    rise = (_status_mb("VmHWM") or 0) - before if before is not None else None
    return {"seconds": seconds, "per_task_ms": seconds / n * 1000, "cpu_per_task_ms": cpu / n * 1000,
            "rss_rise_mb": rise}


@measure("frame_input")
def frame_input(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """A flow whose input is a `rows`-row DataFrame (raw: the frame as parameter; dbnd: a parquet path)."""
    from frames import numeric_frame

    df = numeric_frame(p["rows"])
    small = numeric_frame(100, seed=1)
    if variant == "dbnd":
        import flows_data_dbnd as f

        path, small_path = scratch() / "input.parquet", scratch() / "small.parquet"
        df.to_parquet(path)
        small.to_parquet(small_path)
        f.d_frame_by_path(str(small_path))
        settle()
        seconds, value = timed(f.d_frame_by_path, str(path))
    else:
        import flows_data_raw as f

        with no_heartbeat():
            f.frame_parameter(small)
            settle()
            seconds, value = timed(f.frame_parameter, df)
    assert value == p["rows"], value
    return {"seconds": seconds}


@measure("record")
def stored_record(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """Write then read back a `rows`-row frame: dbnd's parquet target vs Prefect's default result record."""
    from frames import numeric_frame

    df = numeric_frame(p["rows"])
    small = numeric_frame(100, seed=1)
    folder = scratch()
    if variant == "dbnd":
        from dbnd_prefect.targets import Target, type_key

        key = type_key(type(df))

        def write(obj: Any, name: str) -> int:
            return Target(str(folder / f"{name}.parquet"), format="parquet").save(obj)["bytes"]

        def read(name: str) -> Any:
            return Target(str(folder / f"{name}.parquet"), format="parquet").load(key)
    else:
        from prefect.filesystems import LocalFileSystem
        from prefect.results import ResultStore

        storage = LocalFileSystem(basepath=str(folder))

        def write(obj: Any, name: str) -> int:
            ResultStore(result_storage=storage).write(obj, key=name)
            return (folder / name).stat().st_size

        def read(name: str) -> Any:
            return ResultStore(result_storage=storage, cache_result_in_memory=False).read(name).result

    write(small, "warm-up")
    read("warm-up")
    write_s, nbytes = timed(write, df, "frame")
    del df
    read_s, back = timed(read, "frame")
    assert len(back) == p["rows"], len(back)
    return {"seconds": write_s + read_s, "write_s": write_s, "read_s": read_s, "bytes": nbytes}


@measure("rerun")
def rerun(variant: str, p: dict[str, Any]) -> dict[str, Any]:
    """A chain of `n` tasks on a parquet source in the shared folder `p["shared"]`: first run or re-run."""
    from frames import numeric_frame

    shared = Path(p["shared"])
    source = shared / "source.parquet"
    if not source.exists():  # written by the first run only: the re-run must see it unchanged
        numeric_frame(p["rows"]).to_parquet(source)
    warm = scratch() / "warm.parquet"
    numeric_frame(100, seed=1).to_parquet(warm)
    if variant.startswith("dbnd"):
        import flows_data_dbnd as f
        from dbnd_prefect.context import last_run

        f.d_frame_by_path(str(warm))  # warm-up on another pipeline: the chain's cache is untouched
        settle()
        seconds, value = timed(f.d_chain, str(source), p["n"], p["work"])
        run = last_run()
        states = [entry["state"] for entry in run.task_runs] if run else []
    else:
        import flows_data_raw as f

        chain = f.make_chain(shared / "records")
        with no_heartbeat():
            f.frame_parameter(numeric_frame(100, seed=1))
            settle()
            seconds, value = timed(chain, str(source), p["n"], p["work"])
        states = []
    assert len(value) == p["rows"], len(value)
    return {"seconds": seconds, "bodies_run": f.BODIES_RUN[0], "states": {s: states.count(s) for s in set(states)}}


def main() -> None:
    name, variant, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    result = MEASURES[name](variant, params)
    result["peak_rss_mb"] = peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    sys.stderr.flush()
    # The measurement is complete: skip interpreter teardown, where pyarrow's thread pool now and then
    # aborts the process ("terminate called without an active exception", apache/arrow#34314).
    os._exit(0)


if __name__ == "__main__":
    main()
