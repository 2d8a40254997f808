"""From per-run results to table rows (medians, ratios, targets) and the notes printed under the table."""

from __future__ import annotations

from typing import Any

from report import Row, fmt, median
from system_rows import SYSTEM_KEYS, SYSTEM_LARGE_KEYS, system_rows, system_table

Results = dict[str, dict[str, list[dict[str, Any]]]]

# Every row key the full and quick suites print, in order (the smoke test checks them all).
ROW_KEYS = (
    "tasks", "tasks_persist", "tasks_submit_persist", "tasks_cpu", "tasks_block", "tasks_unversioned",
    "chain_unversioned", "chain_persist", "chain", "chain_submit", "chain_cpu",
    "empty", "import", "parallel", "parallel_submit",
    "fanout_time", "fanout_cpu", "fanout_rss",
    "frame_input", "record_time", "record_bytes", "rerun", "rerun_vs_raw", "fingerprint_floats",
    "fingerprint_memory", "fingerprint_strings", "fingerprint_objects", "cli_run", "cli_run_rss", "cli_run_cpu",
    "cli_plan", *SYSTEM_KEYS, *SYSTEM_LARGE_KEYS, "dask", "dask_persist", "dask_cpu", "deployment_run",
)


def measure_of(key: str) -> str:
    """The measure (what `--only` names) a row key of ROW_KEYS comes from: `chain_cpu` -> `chain`."""
    return key if key == "frame_input" else key.split("_")[0]


def _values(results: Results, measure: str, variant: str, field: str = "seconds") -> list[float]:
    return [r[field] for r in results.get(measure, {}).get(variant, []) if r.get(field) is not None]


def _med(results: Results, measure: str, variant: str, field: str = "seconds", scale: float = 1.0) -> float | None:
    value = median(_values(results, measure, variant, field))
    return None if value is None else value * scale


def build_rows(results: Results, quick: bool, system_n: int | None = None,
               system_large: int | None = None) -> list[Row]:
    """The table, one row per key of ROW_KEYS (the 1,000-task `system` rows in the full suite only)."""
    m = lambda *a, **k: _med(results, *a, **k)  # noqa: E731
    size = _sizes(quick)
    heavy = (results.get("import", {}).get("heavy") or [{"modules": None}])[0]["modules"]
    fp_bytes = _med(results, "fingerprint_floats", "dbnd", "bytes")
    fp_dbnd = m("fingerprint_floats", "dbnd")
    first = m("rerun", "dbnd_first")
    raw_first = m("rerun", "raw_first")
    return [
        Row("tasks", f"per-task time, pipeline of {size['tasks']} trivial tasks", m("tasks", "raw", "per_task_ms"),
            m("tasks", "dbnd", "per_task_ms"), "ms", "≤ 1.15×", lambda r: r.ratio <= 1.15),
        Row("tasks_persist", "per-task time, same, raw persisting results to a Path (context)",
            m("tasks", "raw_persist", "per_task_ms"), m("tasks", "dbnd", "per_task_ms"), "ms"),
        Row("tasks_submit_persist", "per-task time, same, raw `.submit()` + results persisted to a Path (context)",
            m("tasks", "raw_submit_persist", "per_task_ms"), m("tasks", "dbnd", "per_task_ms"), "ms"),
        Row("tasks_cpu", "client CPU per task, same flows (raw: direct calls) (context)",
            m("tasks", "raw", "cpu_per_task_ms"), m("tasks", "dbnd", "cpu_per_task_ms"), "ms"),
        Row("tasks_block", "per-task time, dbnd with a LocalFileSystem block as data root vs raw persisting to a Path",
            m("tasks", "raw_persist", "per_task_ms"), m("tasks", "dbnd_block", "per_task_ms"), "ms", "≤ 1.1×",
            lambda r: r.ratio <= 1.1),
        Row("tasks_unversioned", "per-task time, dbnd `versioned=False` tasks vs raw direct calls (context)",
            m("tasks", "raw", "per_task_ms"), m("tasks", "dbnd_unversioned", "per_task_ms"), "ms"),
        Row("chain_unversioned", f"{size['task_chain']}-task chain (each task on the previous output), wall: dbnd "
            "`versioned=False` vs raw direct calls", m("chain", "raw"), m("chain", "dbnd_unversioned"), "s",
            "≤ 1.10×", lambda r: r.ratio <= 1.10),
        Row("chain_persist", "same chain, dbnd versioned vs raw persisting results to a Path",
            m("chain", "raw_persist"), m("chain", "dbnd"), "s", "≤ 1.15×", lambda r: r.ratio <= 1.15),
        Row("chain", "same chain, dbnd versioned vs raw direct calls", m("chain", "raw"), m("chain", "dbnd"), "s",
            "≤ 1.2×", lambda r: r.ratio <= 1.2),
        Row("chain_submit", "same chain, dbnd `versioned=False` vs raw `.submit()` given the previous future (what "
            "dbnd does with every call) (context)", m("chain", "raw_submit"), m("chain", "dbnd_unversioned"), "s"),
        Row("chain_cpu", "same chain, client CPU per task, dbnd versioned vs raw direct calls (context)",
            m("chain", "raw", "cpu_per_task_ms"), m("chain", "dbnd", "cpu_per_task_ms"), "ms",
            raw_note=f"raw persisting {fmt(m('chain', 'raw_persist', 'cpu_per_task_ms'), 'ms')}",
            dbnd_note=f"`versioned=False` {fmt(m('chain', 'dbnd_unversioned', 'cpu_per_task_ms'), 'ms')}"),
        Row("empty", "empty sync pipeline call vs raw sync flow (heartbeat on)", m("empty", "raw"), m("empty", "dbnd"),
            "s", "dbnd ≤ 0.15 s", lambda r: r.dbnd <= 0.15),
        Row("import", "import, whole process (`from prefect import flow, task` / `from dbnd_prefect import "
            "pipeline, task`)", m("import", "raw"),
            m("import", "dbnd"), "s", "≤ 1.05×, no heavy modules",
            lambda r: r.ratio <= 1.05 and heavy == [],
            dbnd_note="heavy modules after `import *`: " + ("none" if heavy == [] else str(heavy))),
        Row("parallel", f"4 independent {size['sleep']} s tasks, wall (raw: direct calls)", m("parallel", "raw"),
            m("parallel", "dbnd"), "s", f"dbnd ≤ {1.3 * size['sleep']:.2g} s",
            lambda r: r.dbnd <= 1.3 * size["sleep"]),
        Row("parallel_submit", "same, raw with `.submit()` (context)", m("parallel", "raw_submit"),
            m("parallel", "dbnd"), "s"),
        Row("fanout_time", f"{_n(size['fanout'])}-task fan-out, time per task (raw `.map`)",
            m("fanout", "raw", "per_task_ms"), m("fanout", "dbnd", "per_task_ms"), "ms", "≤ 1.1×",
            lambda r: r.ratio <= 1.1),
        Row("fanout_cpu", f"{_n(size['fanout'])}-task fan-out, client CPU per task (context)",
            m("fanout", "raw", "cpu_per_task_ms"), m("fanout", "dbnd", "cpu_per_task_ms"), "ms"),
        Row("fanout_rss", f"{_n(size['fanout'])}-task fan-out, process peak RSS", m("fanout", "raw", "peak_rss_mb"),
            m("fanout", "dbnd", "peak_rss_mb"), "MB", "≤ 1.2×", lambda r: r.ratio <= 1.2),
        Row("frame_input", f"{_n(size['frame'])}-row DataFrame into a flow (raw: as parameter; dbnd: by path)",
            m("frame_input", "raw"), m("frame_input", "dbnd"), "s", "≤ 0.15×", lambda r: r.ratio <= 0.15),
        Row("record_time", f"{_n(size['record'])}-row frame write+read (raw: result record; dbnd: parquet)",
            m("record", "raw"), m("record", "dbnd"), "s", "≤ 0.2×", lambda r: r.ratio <= 0.2),
        Row("record_bytes", f"{_n(size['record'])}-row frame, bytes stored", m("record", "raw", "bytes", 1e-6),
            m("record", "dbnd", "bytes", 1e-6), "MB", "≤ 0.7×", lambda r: r.ratio <= 0.7),
        Row("rerun", f"cached re-run of an unchanged {size['chain']}-task pipeline vs its first run",
            first, m("rerun", "dbnd_rerun"), "s", "≤ 0.1×", lambda r: r.ratio <= 0.1,
            raw_note="dbnd first run", dbnd_note="dbnd re-run"),
        Row("rerun_vs_raw", "same re-run, raw Prefect with INPUTS + TASK_SOURCE cache (context)",
            m("rerun", "raw_rerun"), m("rerun", "dbnd_rerun"), "s",
            raw_note=f"first run {fmt(raw_first, 's')}"),
        Row("fingerprint_floats", f"fingerprint {_n(size['fp_floats'])}×5 numeric frame (raw: INPUTS key)",
            m("fingerprint_floats", "raw"), fp_dbnd, "s", "≤ 0.067× (15× faster), ≥ 10 GB/s",
            lambda r: r.ratio <= 1 / 15 and _rate(fp_bytes, fp_dbnd) >= 10,
            dbnd_note=f"{_rate(fp_bytes, fp_dbnd):.1f} GB/s"),
        Row("fingerprint_memory", "fingerprint extra peak RSS vs the frame's size", (fp_bytes or 0) / 2**20,
            m("fingerprint_floats", "dbnd", "extra_rss_mb"), "MB", "≤ 0.2×", lambda r: r.ratio <= 0.2,
            raw_note="frame size",
            dbnd_note=f"INPUTS key: {fmt(m('fingerprint_floats', 'raw', 'extra_rss_mb'), 'MB')}"),
        Row("fingerprint_strings", f"fingerprint {_n(size['fp_strings'])}-row str column (raw: hash_pandas_object)",
            m("fingerprint_strings", "raw"), m("fingerprint_strings", "dbnd"), "s", "≤ 1×", lambda r: r.ratio <= 1),
        Row("fingerprint_objects", f"fingerprint {_n(size['fp_strings'])}-row object column (raw: hash_pandas_object)",
            m("fingerprint_objects", "raw"), m("fingerprint_objects", "dbnd"), "s", "≤ 1×", lambda r: r.ratio <= 1),
        *cli_rows(results, size["cli_chain"]),
        *system_rows(results, system_n or size["system"], size["system_large"] if system_large is None
                     else system_large, quick),
        *cluster_rows(results, size),
    ]


def cluster_rows(results: Results, size: dict[str, Any]) -> list[Row]:
    """A Dask cluster's task runs (bench/dask_rows.py) and deployment runs on a process worker
    (bench/deployment_run.py)."""
    m = lambda *a, **k: _med(results, *a, **k)  # noqa: E731

    def cpu(variant: str) -> float | None:  # driver + scheduler and workers + server, per task
        parts = [m("dask", variant, f) for f in ("driver_cpu_per_task_ms", "cluster_cpu_per_task_ms",
                                                  "server_cpu_per_task_ms")]
        return None if None in parts else sum(parts)  # type: ignore[arg-type]

    cached = results.get("deployment", {}).get("cached") or [{}]
    return [
        Row("dask", f"per-task time, pipeline of {size['dask']} trivial tasks on a Dask cluster (scheduler + 2 "
            "worker processes; raw: prefect-dask `.submit()`)", m("dask", "raw", "per_task_ms"),
            m("dask", "dbnd", "per_task_ms"), "ms", "≤ 1.1×", lambda r: r.ratio <= 1.1),
        Row("dask_persist", "same, raw persisting results to a shared folder (context)",
            m("dask", "raw_persist", "per_task_ms"), m("dask", "dbnd", "per_task_ms"), "ms"),
        Row("dask_cpu", "same, CPU per task: driver + scheduler and workers + Prefect server (context)", cpu("raw"),
            cpu("dbnd"), "ms", raw_note=f"cluster {fmt(m('dask', 'raw', 'cluster_cpu_per_task_ms'), 'ms')}",
            dbnd_note=f"cluster {fmt(m('dask', 'dbnd', 'cluster_cpu_per_task_ms'), 'ms')}"),
        Row("deployment_run", f"`prefect deployment run` to completion, {size['deployment']}-task pipeline, dbnd "
            "cached vs raw flow (process worker)", m("deployment", "raw"), m("deployment", "dbnd"), "s", "≤ 1.1×",
            lambda r: r.ratio <= 1.1,
            dbnd_note=f"{cached[0].get('all_cached', '?')} of {cached[0].get('runs', '?')} runs reused every task"),
    ]


def cli_rows(results: Results, n: int) -> list[Row]:
    """`dbnd run` / `dbnd plan` whole processes; the baseline column is the original DBND 1.0.34."""
    m = lambda *a, **k: _med(results, *a, **k)  # noqa: E731
    skipped = (results.get("cli_run", {}).get("skipped") or [{}])[0].get("reason")
    original = f"skipped: {skipped}" if skipped else "DBND 1.0.34"
    hits = ", ".join(sorted({str(r.get("hits")) for r in results.get("cli_plan", {}).get("dbnd", [])})) or "n/a"
    started = any(r.get("started_server") for r in results.get("cli_plan", {}).get("dbnd", []))
    return [
        Row("cli_run", f"`dbnd run` of a {n}-task chain, `--task-version now`, whole process wall (baseline: "
            "original DBND 1.0.34, local executor; dbnd_prefect on a running local server)",
            m("cli_run", "dbnd_original"), m("cli_run", "dbnd"), "s", "≤ 1.0×", lambda r: r.ratio <= 1.0,
            raw_note=original),
        Row("cli_run_rss", "same, whole process peak RSS", m("cli_run", "dbnd_original", "peak_rss_mb"),
            m("cli_run", "dbnd", "peak_rss_mb"), "MB", "≤ 1.0×", lambda r: r.ratio <= 1.0, raw_note=original),
        Row("cli_run_cpu", "same, CPU (user+sys); dbnd_prefect: its process + the Prefect server's during the run "
            "(context)", m("cli_run", "dbnd_original", "cpu_s"), m("cli_run", "dbnd", "cpu_with_server_s"), "s",
            raw_note=original, dbnd_note=f"process {fmt(m('cli_run', 'dbnd', 'cpu_s'), 's')} + server "
                                         f"{fmt(m('cli_run', 'dbnd', 'server_cpu_s'), 's')}"),
        Row("cli_plan", "`dbnd plan` of the same chain, no Prefect API, whole process wall (baseline: original "
            "DBND's `dbnd run --describe`)", m("cli_plan", "dbnd_original"), m("cli_plan", "dbnd"), "s",
            "dbnd ≤ 1.5 s, no server", lambda r: r.dbnd <= 1.5 and not started, raw_note=original,
            dbnd_note=f"hits: {hits}" + ("; STARTED A PREFECT SERVER" if started else "")),
    ]


def _n(count: float) -> str:
    """1e7 -> "1e7", 2000 -> "2,000"."""
    if count >= 1e4 and str(int(count)).rstrip("0") == "1":
        return f"1e{len(str(int(count))) - 1}"
    return f"{int(count):,}"


def _rate(nbytes: float | None, seconds: float | None) -> float:
    return (nbytes / seconds / 1e9) if nbytes and seconds else 0.0


def _sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"tasks": 40, "task_chain": 10, "sleep": 0.2, "fanout": 50, "frame": 1e4, "record": 1e4, "chain": 4,
                "fp_floats": 1e4, "fp_strings": 1e4, "cli_chain": 10, "dask": 10, "deployment": 2,
                "system": 5, "system_large": 0}
    return {"tasks": 200, "task_chain": 100, "sleep": 1.0, "fanout": 2000, "frame": 1e6, "record": 1e7, "chain": 20,
            "fp_floats": 1e7, "fp_strings": 1e6, "cli_chain": 100, "dask": 100, "deployment": 5,
            "system": 100, "system_large": 1000}


def notes(results: Results, quick: bool) -> str:
    """How each measure was taken, and the per-run numbers behind the medians."""
    m = lambda *a, **k: _med(results, *a, **k)  # noqa: E731
    lines = [
        "Notes:",
        "- Ratio = dbnd_prefect / raw Prefect (lower is better). Medians over the runs; every run is a fresh "
        "process after a warm-up of the same kind, against one `prefect server` (SQLite) on 127.0.0.1, variants "
        "alternating, with a pause between runs.",
        "- Each worker lets the server settle after its warm-up: right after a burst of runs, Prefect's SQLite "
        "server answers `POST /flow_runs/` with 503 (database is locked) and the client retries after ~2 s, "
        "which hits raw and dbnd alike.",
        "- Client CPU = the worker process's CPU time (all threads) per task: steadier than wall time on a "
        "shared machine, and it excludes the server's work.",
        "- Raw flows run with the sync-flow heartbeat off (as dbnd_prefect runs flows outside deployments), "
        "except in the empty-flow row whose point is that wait: raw is the faster for it.",
        "- Per-task time = (flow wall - empty flow wall) / tasks; fan-out time = flow wall / tasks. dbnd tasks "
        "write each output to a typed file plus a JSON manifest and a cache record; raw tasks persist nothing "
        "unless said.",
        "- Chain rows: one flow of trivial tasks, each called on the previous task's output (so they run one "
        "after the other on both sides); wall of the whole flow call, one timed run per process after a warm-up "
        "(a second run in the same process would meet the server still digesting the first one's events: 503, "
        "+2 s), medians over the processes. Heartbeat off on both sides (dbnd_prefect turns it off itself).",
        "- Write+read compares `Target.save` + `Target.load` (parquet) with `ResultStore.write` + `.read` "
        "(Prefect's default JSON record with base64 pickle) on a local folder; frames are 4 random float64 "
        "columns + 1 int32 column.",
        "- Re-run: a chain of tasks with a sleep of "
        f"{0.05 if quick else 0.25} s each (simulated work), re-run in a new process on the same data; "
        f"task bodies executed on re-run: dbnd {_joined(results, 'rerun', 'dbnd_rerun', 'bodies_run')}, "
        f"raw {_joined(results, 'rerun', 'raw_rerun', 'bodies_run')}; dbnd re-run states "
        f"{_joined(results, 'rerun', 'dbnd_rerun', 'states')}.",
        f"- Fan-out: peak RSS rise during the timed flow: raw {fmt(m('fanout', 'raw', 'rss_rise_mb'), 'MB')}, "
        f"dbnd {fmt(m('fanout', 'dbnd', 'rss_rise_mb'), 'MB')}. Write+read split: raw "
        f"{fmt(m('record', 'raw', 'write_s'), 's')} + {fmt(m('record', 'raw', 'read_s'), 's')}, dbnd "
        f"{fmt(m('record', 'dbnd', 'write_s'), 's')} + {fmt(m('record', 'dbnd', 'read_s'), 's')}.",
        "- `dbnd run` / `dbnd plan` rows: whole `dbnd` processes (wall and peak RSS from `wait4`), a chain where each "
        "task takes the previous task's output, alternating with the original DBND 1.0.34 installed by the bench in "
        "`.cache/bench-dbnd-venv` (its local in-process executor, DBND_HOME as project); one untimed warm-up run "
        "each. dbnd_prefect runs against the suite's running Prefect server; `dbnd plan` runs with no "
        "PREFECT_API_URL (it must start no server) on a project where the chain is stored (every step a hit). "
        f"dbnd run peak RSS per run: dbnd_prefect {_joined(results, 'cli_run', 'dbnd', 'peak_rss_mb')} MB, "
        f"original {_joined(results, 'cli_run', 'dbnd_original', 'peak_rss_mb')} MB.",
        "- Fingerprint rows come from bench/bench_fingerprint.py's worker, one process per variant (best of "
        f"{1 if quick else 3} timed runs); extra peak RSS is the rise over the RSS with the frame loaded.",
        "- Dask rows (bench/dask_rows.py): a `distributed` scheduler and 2 single-threaded worker processes on "
        "127.0.0.1; each variant a fresh driver process (warm-up, empty flow, timed flow), alternating; the dbnd "
        "pipeline gets the cluster from a profile (`task_runner = {type = \"dask\", address = ...}`) and writes "
        "outputs, manifests and cache records to a local root the workers share. CPU per task: driver and cluster "
        "during the timed flow, server over the driver process's life (warm-up and exit included, when dbnd "
        "sends the run's artifacts and lineage events). Driver process exit after its run: raw "
        f"{_seconds(results, 'dask', 'raw', 'exit_seconds')} s, "
        f"dbnd {_seconds(results, 'dask', 'dbnd', 'exit_seconds')} s.",
        "- Deployment row (bench/deployment_run.py): both flows deployed with `prefect deploy --all` on a process "
        "pool served by a real `prefect worker` (1 s poll); one warm-up run each (dbnd stores its outputs), then "
        "runs created as `prefect deployment run` does, alternating, timed until the client sees a final state. "
        "Server-recorded run time: raw "
        f"{fmt(m('deployment', 'raw', 'run_seconds'), 's')}, dbnd {fmt(m('deployment', 'dbnd', 'run_seconds'), 's')}.",
        "- System rows (bench/system_rows.py): the same chain of tasks that each sum `--system-work` squares, as "
        "a raw Prefect script (bench/chain_raw_script.py, heartbeat off, results persisted to a Path or not), as "
        "`dbnd run chain_dbnd_prefect.chain --task-version now`, and as the original DBND's `dbnd run`; each run a "
        "fresh process (one project folder per side, one untimed warm-up of 10 tasks each), alternating. Client "
        "CPU from `wait4`; server CPU = the server's process tree (/proc utime+stime, with reaped children) from "
        "the run's start until its CPU stays flat for 1.5 s, less its idle rate measured just before.",
        "",
        system_table(results) if any(k.startswith("system") for k in results) else "",
        "",
        "Per-run values (seconds unless said):",
    ]
    for measure, variants in results.items():
        for variant, runs in variants.items():
            if (measure, variant) in (("import", "heavy"), ("cli_run", "skipped"), ("deployment", "cached"),
                                      ("system", "skipped")):
                continue
            field = "per_task_ms" if measure in ("tasks", "fanout", "chain", "dask") else "seconds"
            values = ", ".join(fmt(r.get(field)) for r in runs)
            lines.append(f"- {measure}/{variant}{' (ms/task)' if field == 'per_task_ms' else ''}: {values}")
    return "\n".join(lines)


def _seconds(results: Results, measure: str, variant: str, field: str) -> str:
    return ", ".join(f"{r[field]:.1f}" for r in results.get(measure, {}).get(variant, []) if r.get(field) is not None) \
        or "n/a"


def _joined(results: Results, measure: str, variant: str, field: str) -> str:
    return ", ".join(str(r.get(field)) for r in results.get(measure, {}).get(variant, [])) or "n/a"
