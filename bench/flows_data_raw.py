"""Raw Prefect flows that move DataFrames, done the natural Prefect way. Imports Prefect and pandas."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from frames import step_transform

BODIES_RUN = [0]  # task bodies executed in this process (a cached re-run should add none)


@task
def count_rows(df: pd.DataFrame) -> int:
    return len(df)


@flow
def frame_parameter(df: pd.DataFrame) -> int:
    """A flow given the DataFrame itself, as Prefect users pass data between flows."""
    return count_rows(df)


def make_cached_step(records: Path):
    """The chain's step as a cached task: INPUTS + TASK_SOURCE key, results persisted under `records`."""

    @task(cache_policy=INPUTS + TASK_SOURCE, persist_result=True, result_storage=records)
    def step(df: pd.DataFrame, k: int, work: float) -> pd.DataFrame:
        BODIES_RUN[0] += 1
        time.sleep(work)
        return step_transform(df, k)

    return step


def make_chain(records: Path):
    """A flow reading a parquet file and running `n` cached steps on it, one after the other."""
    step = make_cached_step(records)

    @flow(name="raw-chain")
    def chain(path: str, n: int, work: float) -> pd.DataFrame:
        df = pd.read_parquet(path)
        for k in range(n):
            df = step(df, k, work)
        return df

    return chain
