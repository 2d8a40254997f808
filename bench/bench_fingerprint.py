"""Benchmark: `fingerprint_value` vs Prefect's INPUTS cache key vs `pandas.util.hash_pandas_object`.

Each (data set, variant) runs in a fresh subprocess: time is the best of --reps runs; extra peak memory is
measured on the first full run (after a warm-up on 100 rows that does the lazy imports), as the rise of the process's peak RSS over its RSS with the data loaded
(Linux: VmHWM reset through /proc/self/clear_refs; elsewhere ru_maxrss) and as tracemalloc's peak.

    python bench/bench_fingerprint.py            # 1e7 x 5 float64 (400 MB) and 1e6-row string frames
    python bench/bench_fingerprint.py --quick    # 1e5 rows: a smoke test for CI
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any, Callable

VARIANTS = ("dbnd fingerprint_value", "prefect INPUTS key", "hash_pandas_object.sum")
DATASETS = {
    "float64 x5": "floats",
    "str column (pandas str dtype)": "strings",
    "str column (object dtype)": "objects",
}


def build(dataset: str, rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    if dataset == "floats":
        return pd.DataFrame({f"c{i}": rng.random(rows) for i in range(5)})
    values = [f"customer-{i:08d}-{v}" for i, v in enumerate(rng.integers(0, 1_000_000, rows).tolist())]
    # object dtype is built without passing through Arrow, whose memory pool would keep the pages resident
    return pd.DataFrame({"s": pd.Series(values, dtype=object if dataset == "objects" else None)})


def variant_function(variant: str, df: Any) -> Callable[[], Any]:
    if variant == "dbnd fingerprint_value":
        from dbnd_prefect.fingerprint import clear_fingerprint_cache, fingerprint_value

        def ours() -> Any:
            clear_fingerprint_cache()  # measure hashing, not the memo cache
            return fingerprint_value(df)

        return ours
    if variant == "prefect INPUTS key":
        from prefect.cache_policies import INPUTS  # Inputs.compute_key never reads task_ctx

        return lambda: INPUTS.compute_key(task_ctx=None, inputs={"df": df}, flow_parameters={})
    import pandas as pd

    return lambda: pd.util.hash_pandas_object(df).sum()


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def worker(dataset: str, variant: str, rows: int, reps: int) -> dict[str, Any]:
    import resource

    df = build(dataset, rows)
    nbytes = int(df.memory_usage(index=True, deep=dataset != "floats").sum())
    run = variant_function(variant, df)
    variant_function(variant, df.head(100))()  # warm-up on a sliver: lazy imports are not what is measured
    gc.collect()
    rss_before = _status_kb("VmRSS")
    if _reset_peak_rss() and rss_before is not None:
        run()
        extra_rss = (_status_kb("VmHWM") or 0) - rss_before
    else:  # ru_maxrss only rises: a rise above the load's own peak is all it can show
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run()
        extra_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    gc.collect()
    tracemalloc.start()
    run()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    times = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"bytes": nbytes, "seconds": min(times), "extra_rss_mb": max(0, extra_rss) / 1024, "traced_mb": traced_peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1e5 rows for every data set (CI smoke test)")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per variant (best is kept)")
    parser.add_argument("--worker", nargs=4, metavar=("DATASET", "VARIANT", "ROWS", "REPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        dataset, variant, rows, reps = args.worker
        print(json.dumps(worker(dataset, variant, int(rows), int(reps))))
        return

    reps = args.reps or (1 if args.quick else 3)
    rows_for = {"floats": 100_000, "strings": 100_000, "objects": 100_000} if args.quick else {
        "floats": 10_000_000, "strings": 1_000_000, "objects": 1_000_000}
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python_path = os.pathsep.join(p for p in (repo_root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": python_path, "PREFECT_LOGGING_LEVEL": "WARNING"}
    header = f"{'data set':<32}{'rows':>11}{'MB':>8}  {'variant':<24}{'seconds':>9}{'GB/s':>8}{'x ours':>8}{'+RSS MB':>9}{'+RSS/data':>10}{'traced MB':>10}"
    print(header)
    print("-" * len(header))
    for label, dataset in DATASETS.items():
        rows = rows_for[dataset]
        results = {}
        for variant in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", dataset, variant, str(rows), str(reps)],
                env=env, capture_output=True, text=True,
            )
            if out.returncode != 0:
                sys.exit(f"{label} / {variant} failed:\n{out.stderr}")
            results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
        ours = results[VARIANTS[0]]["seconds"]
        for variant, r in results.items():
            mb = r["bytes"] / 1e6
            print(
                f"{label:<32}{rows:>11,}{mb:>8.0f}  {variant:<24}{r['seconds']:>9.4f}{r['bytes'] / r['seconds'] / 1e9:>8.2f}"
                f"{r['seconds'] / ours:>8.1f}{r['extra_rss_mb']:>9.1f}{r['extra_rss_mb'] * 1.048576 / mb:>10.3f}{r['traced_mb']:>10.1f}"
            )
    print("\nx ours: seconds relative to dbnd fingerprint_value; +RSS: peak RSS above RSS with the data loaded.")


if __name__ == "__main__":
    main()
