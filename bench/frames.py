"""The DataFrames the benchmarks move, built the same way for raw Prefect and dbnd_prefect."""

from __future__ import annotations

from typing import Any


def numeric_frame(rows: int, seed: int = 0) -> Any:
    """`rows` x 5 columns: four random float64 and one int32 (36 bytes a row, 360 MB at 1e7 rows)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {f"x{i}": rng.random(rows) for i in range(4)}
    columns["group"] = rng.integers(0, 1000, rows, dtype=np.int32)
    return pd.DataFrame(columns)


def step_transform(df: Any, k: int) -> Any:
    """One chain step's real work: a cheap column update."""
    out = df.copy()
    out["x0"] = out["x0"] * 0.5 + k
    return out
