"""Bench of `dbnd gc` and `dbnd diff --key`: prints a small markdown table with ratios.

    .venv/bin/python bench/lifecycle_rows.py [--versions 10000] [--rows 10000000]

1. `dbnd gc` (a dry run) over a synthetic data root of VERSIONS stored versions (100 tasks, manifests and
   output files written straight into the layout, each version reading one of the task before it), against
   the floor of any such command: walking the root and parsing every manifest with the standard library.
2. `dbnd diff A B --key id` of two ROWS-row parquet frames (1% rows removed, 1% added, 1% changed), against
   a hand-written pandas comparison (read both, outer merge on the key with an indicator, compare columns).
3. A 31-day backfill of a cached 3-task pipeline (every date already computed): its cost per date, against a
   single cached run of one date (`dbnd_prefect.run`, median of 6: 3 before, 3 after), in one process on dbnd's local Prefect
   server (in a PREFECT_HOME of its own, stopped after).

Each measurement runs in a fresh process, which also reports its peak resident memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = 100


def make_root(root: Path, versions: int) -> None:
    """VERSIONS versions in the layout, spread over 60 days; version i of task k reads one of task k-1."""
    now = dt.datetime.now(dt.timezone.utc)
    per_task = max(1, versions // TASKS)
    signatures: dict[int, list[str]] = {}
    for k in range(TASKS):
        name = f"task_{k:03d}"
        signatures[k] = []
        for i in range(per_task):
            signature = f"{k:08x}{i:08x}" + "0" * 16
            ended = now - dt.timedelta(days=60 * (per_task - i) / per_task)
            folder = root / "local" / ended.date().isoformat() / name / f"{name}_{signature[:16]}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "result.parquet").write_bytes(b"x" * 512)
            inputs = []
            if k:
                upstream = signatures[k - 1][i]
                inputs = [{"name": "frame", "producer_task": f"task_{k - 1:03d}", "producer_signature": upstream,
                           "fingerprint": f"output:{upstream}:result"}]
            manifest = {"schema_version": 1, "task": name, "signature": signature, "inputs": inputs,
                        "signature_parts": {"task": f"flows.py:{name}", "params": {}}, "parameters": {},
                        "outputs": {"result": {"uri": str(folder / "result.parquet"), "bytes": 512}},
                        "ended": ended.isoformat(), "started": ended.isoformat()}
            (folder / "_manifest.json").write_text(json.dumps(manifest))
            for path in (folder / "result.parquet", folder / "_manifest.json"):  # as if written when it ended
                os.utime(path, (ended.timestamp(), ended.timestamp()))
            signatures[k].append(signature)


def make_frames(folder: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    ids = np.arange(rows, dtype=np.int64)
    a = {"id": ids, "x": rng.random(rows), "y": rng.integers(0, 1000, rows), "z": rng.random(rows)}
    keep = ids % 100 != 1  # 1% removed
    b = {name: values[keep].copy() for name, values in a.items()}
    changed = b["id"] % 100 == 2  # 1% changed
    b["x"][changed] += 1.0
    added = np.arange(rows, rows + rows // 100, dtype=np.int64)  # 1% added
    b = {"id": np.concatenate([b["id"], added]), "x": np.concatenate([b["x"], rng.random(len(added))]),
         "y": np.concatenate([b["y"], rng.integers(0, 1000, len(added))]),
         "z": np.concatenate([b["z"], rng.random(len(added))])}
    pq.write_table(pa.table(a), folder / "a.parquet")
    pq.write_table(pa.table(b), folder / "b.parquet")


DAILY = """
import datetime

from dbnd_prefect import pipeline, task


@task
def extract(task_target_date: datetime.date) -> list:
    return [task_target_date.toordinal() + i for i in range(100)]


@task
def clean(rows: list) -> list:
    return [r for r in rows if r % 3]


@task
def total(rows: list) -> int:
    return sum(rows)


@pipeline
def daily():
    return total(clean(extract()))
"""


def backfill_costs(folder: Path, days: int = 31) -> dict:
    """Seconds per date of a backfill whose dates are all stored, and of one cached run of one date."""
    import statistics

    from dbnd_prefect import run
    from dbnd_prefect.api.backfill import backfill

    (folder / "bench_daily.py").write_text(DAILY)
    sys.path.insert(0, str(folder))
    from bench_daily import daily

    start, end = dt.date(2024, 1, 1), dt.date(2024, 1, days)
    first = backfill(daily, start, end)  # computes every date (not timed)
    assert first.count("ran") == days, [d.error for d in first.dates if d.error]
    singles: list[float] = []

    def single_runs() -> None:
        for _ in range(3):
            started = time.perf_counter()
            result = run(daily, set={"run.task_target_date": "2024-01-15"})
            singles.append(time.perf_counter() - started)
            assert all(t["state"] == "Cached" for t in result.run.task_runs)

    single_runs()  # before and after the backfill: a machine that gets busier weighs on both sides
    started = time.perf_counter()
    again = backfill(daily, start, end)
    seconds = time.perf_counter() - started
    single_runs()
    assert again.count("reused") == days, [d.status for d in again.dates]
    return {"per_date": seconds / days, "single": statistics.median(singles), "total": seconds}


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, folder: Path) -> dict:
    """One measurement in this process: seconds (imports done before the clock starts) and the result's gist."""
    started = time.perf_counter()
    if kind in ("gc", "diff", "backfill"):
        sys.path.insert(0, str(REPO))
        import pyarrow.parquet

        import dbnd_prefect.api.diff
        import dbnd_prefect.api.gc
        import dbnd_prefect.api.run
        import dbnd_prefect.cli.app  # noqa: F401
    if kind == "pandas":
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    imports = time.perf_counter() - started
    start = time.perf_counter()
    if kind == "backfill":
        os.chdir(folder)
        gist = backfill_costs(folder)
    elif kind == "gc":
        gist = _cli(folder, "gc", "--json", "--keep-last", "3", "--older-than", "7d")["removed_versions"]
    elif kind == "walk":
        count = 0
        for parent, _, files in os.walk(folder / "data"):
            for name in files:
                if name == "_manifest.json":
                    with open(os.path.join(parent, name), "rb") as f:
                        json.loads(f.read())
                    count += 1
        gist = count
    elif kind == "diff":
        keyed = _cli(folder, "diff", "a.parquet", "b.parquet", "--key", "id", "--json")["keyed"]
        gist = [keyed["added"], keyed["removed"], keyed["changed"]]
    else:  # the hand-written pandas merge
        import pandas as pd

        a, b = pd.read_parquet(folder / "a.parquet"), pd.read_parquet(folder / "b.parquet")
        merged = a.merge(b, on="id", how="outer", indicator=True, suffixes=("_a", "_b"))
        both = merged[merged["_merge"] == "both"]
        differs = sum((both[f"{c}_a"] != both[f"{c}_b"]) for c in ("x", "y", "z")).astype(bool)
        gist = [int((merged["_merge"] == "right_only").sum()), int((merged["_merge"] == "left_only").sum()),
                int(differs.sum())]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "imports": imports, "peak_mib": peak_mib(), "gist": gist}


def _cli(folder: Path, *args: str) -> dict:
    """A `dbnd ... --json` command run in this process in `folder`; its JSON output."""
    sys.path.insert(0, str(REPO))
    from dbnd_prefect.pytest_plugin import run_cmd

    os.chdir(folder)
    result = run_cmd(list(args))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def run(kind: str, folder: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", kind, "--folder", str(folder)], capture_output=True,
                          check=False,
                          text=True, timeout=1800, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--one")
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, Path(args.folder))))
        return
    with tempfile.TemporaryDirectory(prefix="dbnd-bench-lifecycle-") as tmp:
        folder = Path(tmp)
        (folder / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
        make_root(folder / "data", args.versions)
        make_frames(folder, args.rows)
        found = {kind: run(kind, folder) for kind in ("walk", "gc", "pandas", "diff")}
        home = folder / "prefect-home"
        os.environ.update(PREFECT_HOME=str(home))
        api_url = os.environ.pop("PREFECT_API_URL", None)  # dbnd's local server, in a home of its own
        try:
            found["backfill"] = run("backfill", folder)
        finally:
            subprocess.run([sys.executable, "-m", "dbnd_prefect", "server", "stop"], cwd=folder, capture_output=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
            if api_url is not None:
                os.environ["PREFECT_API_URL"] = api_url
    assert found["diff"]["gist"] == found["pandas"]["gist"], (found["diff"], found["pandas"])
    rows = [
        (f"`dbnd gc` dry run, {args.versions:,} versions", found["gc"],
         "walk + json.load every manifest", found["walk"]),
        (f"`dbnd diff --key id`, 2 x {args.rows:,} rows", found["diff"],
         "pandas read + outer merge + compare", found["pandas"]),
    ]
    print("| what | dbnd s | baseline | baseline s | ratio | dbnd peak MiB | baseline peak MiB |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for what, ours, baseline, theirs in rows:
        print(f"| {what} | {ours['seconds']:.2f} | {baseline} | {theirs['seconds']:.2f} | "
              f"{ours['seconds'] / theirs['seconds']:.2f}x | {ours['peak_mib']:.0f} | {theirs['peak_mib']:.0f} |")
    costs = found["backfill"]["gist"]
    print(f"| 31-day backfill of a cached 3-task pipeline, per date | {costs['per_date']:.2f} | one cached run of "
          f"one date (median of 6) | {costs['single']:.2f} | {costs['per_date'] / costs['single']:.2f}x | "
          f"{found['backfill']['peak_mib']:.0f} | (same process) |")
    print(f"\nimports before the clock started: dbnd {found['gc']['imports']:.1f} s (a fresh `dbnd` process pays "
          f"them once), pandas + pyarrow {found['pandas']['imports']:.1f} s")
    print(f"gc would remove {found['gc']['gist']} version(s); diff found added, removed, changed = "
          f"{found['diff']['gist']} (pandas: {found['pandas']['gist']})")


if __name__ == "__main__":
    main()
