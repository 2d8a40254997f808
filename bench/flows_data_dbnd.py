"""dbnd_prefect pipelines that move DataFrames: data parameters given as paths, outputs as parquet files."""

from __future__ import annotations

import time

from pandas import DataFrame

from dbnd_prefect import pipeline, task
from frames import step_transform

BODIES_RUN = [0]  # task bodies executed in this process (a cached re-run should add none)


@task
def d_count_rows(data: DataFrame) -> int:
    return len(data)


@pipeline
def d_frame_by_path(data: DataFrame) -> int:
    """A pipeline given a parquet path for its DataFrame parameter; the task loads it."""
    return d_count_rows(data)


@task
def d_step(data: DataFrame, k: int, work: float) -> DataFrame:
    BODIES_RUN[0] += 1
    time.sleep(work)
    return step_transform(data, k)


@pipeline
def d_chain(source: DataFrame, n: int, work: float) -> DataFrame:
    """`n` steps, each on the previous one's output."""
    data = source
    for k in range(n):
        data = d_step(data, k, work)
    return data
