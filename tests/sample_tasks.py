"""Small tasks and pipelines that the tests of several rooms call (one definition each: task names are unique)."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import pandas as pd

from dbnd_prefect import pipeline, task


@task
def double(x: int) -> int:
    return x * 2


@task
def split3(raw: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n = len(raw) // 3
    return raw.iloc[:n], raw.iloc[n:2 * n], raw.iloc[2 * n:]


def sample_frame(n: int = 9) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype="int64"), "y": [f"s{i}" for i in range(n)]})


@task
def typed(n: int, ratio: float = 0.5, flag: bool = False) -> float:
    return n * ratio if flag else n


@task
def scale_by(x: int, factor: int, label: str = "n") -> str:
    return f"{label}{x * factor}"


@task
def numbers(n: int) -> list:
    return list(range(n))


@pipeline
def mapped(xs: list, factor: int = 10):
    from prefect import unmapped

    direct = scale_by.map(xs, factor=unmapped(factor), label="a")  # a str is passed whole, like Prefect does
    over_upstream = scale_by.map(numbers(3), [1, 2, 3])
    return direct, over_upstream
