"""The cost of automatic data profiles: profiling a frame vs writing it as parquet (issue #14: ≤ 0.3×).

    .venv/bin/python bench/profile_rows.py                 # 1e6 rows (bench/frames.py numeric_frame + a text column)
    .venv/bin/python bench/profile_rows.py --rows 100000 --reps 3

Prints one row of the benchmark table (bench/report.py): "raw" is `DataFrame.to_parquet` of the frame,
"dbnd" is the automatic profile with the default `[tracking]` settings (histograms off, 50,000-row
sample). Medians of `--reps` runs after a warm-up; no Prefect server is needed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from frames import numeric_frame  # noqa: E402
from report import Row, markdown_table, median  # noqa: E402


def bench_frame(rows: int):
    """bench's numeric frame plus a low-cardinality text column (what profiles spend most on)."""
    import numpy as np

    frame = numeric_frame(rows)
    frame["label"] = np.random.default_rng(1).choice(["red", "white", "rose"], rows)
    return frame


def measure(rows: int, reps: int) -> tuple[list[float], list[float]]:
    from dbnd_prefect.tracking.profiling import ProfileOptions, profile_data
    from dbnd_prefect.config.tracking_settings import TrackingSettings

    settings = TrackingSettings()
    options = ProfileOptions(with_histograms=settings.histograms, sample_rows=settings.sample_rows)
    frame = bench_frame(rows)
    writes, profiles = [], []
    with tempfile.TemporaryDirectory(prefix="dbnd-bench-profile-") as folder:
        path = Path(folder) / "frame.parquet"
        frame.to_parquet(path)
        profile_data(frame, options)  # warm-up: imports, first allocations
        for _ in range(reps):
            start = time.perf_counter()
            frame.to_parquet(path)
            writes.append(time.perf_counter() - start)
            start = time.perf_counter()
            profile_data(frame, options)
            profiles.append(time.perf_counter() - start)
    return writes, profiles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    writes, profiles = measure(args.rows, args.reps)
    row = Row("profile_frame", f"automatic profile of a {args.rows:,}-row frame (raw: write it as parquet)",
              median(writes), median(profiles), "s", target="≤ 0.3×", check=lambda r: r.ratio <= 0.3,
              raw_note="to_parquet", dbnd_note="profile")
    print(markdown_table([row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
