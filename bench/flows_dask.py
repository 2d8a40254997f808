"""The same trivial tasks as a dbnd pipeline and as a raw Prefect flow, both on a Dask or Ray cluster
(bench/dask_rows.py, `--engine`).

The cluster's address comes from DBND_BENCH_DASK_ADDRESS and its kind from DBND_BENCH_ENGINE (`dask`, the
default, or `ray`); the workers import this module (PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow
from prefect import task as prefect_task

from dbnd_prefect import pipeline, task

ADDRESS = os.environ.get("DBND_BENCH_DASK_ADDRESS", "")
ENGINE = os.environ.get("DBND_BENCH_ENGINE", "dask")


def _runner():
    if ENGINE == "ray":
        from prefect_ray import RayTaskRunner

        return RayTaskRunner(address=ADDRESS)
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=ADDRESS)


@prefect_task
def raw_trivial(i: int) -> int:
    return i + 1


@flow(task_runner=_runner() if ADDRESS else None)
def raw_many(n: int, start: int = 0) -> None:
    futures = [raw_trivial.submit(i) for i in range(start, start + n)]
    for future in futures:
        future.result()


# the same task persisting its results to a folder the workers share (DBND_BENCH_RESULTS)
raw_trivial_persisted = raw_trivial.with_options(
    name="raw_trivial_persisted", persist_result=True,
    result_storage=Path(os.environ.get("DBND_BENCH_RESULTS", "raw-results")))


@flow(task_runner=_runner() if ADDRESS else None)
def raw_many_persisted(n: int, start: int = 0) -> None:
    futures = [raw_trivial_persisted.submit(i) for i in range(start, start + n)]
    for future in futures:
        future.result()


@flow(task_runner=_runner() if ADDRESS else None)
def raw_empty() -> None:
    pass


@task
def dask_trivial(i: int) -> int:
    return i + 1


@pipeline
def dbnd_many(n: int, start: int = 0) -> None:
    """`n` trivial tasks, submitted as the pipeline calls them (the profile puts them on the Dask cluster)."""
    for i in range(start, start + n):
        dask_trivial(i)


@pipeline
def dbnd_empty() -> None:
    pass
