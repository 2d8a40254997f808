"""dbnd_prefect pipelines for the benchmarks that need no pandas (so none is imported)."""

from __future__ import annotations

import time

from dbnd_prefect import pipeline, task


@task
def d_trivial(i: int) -> int:
    return i + 1


@task
def d_sleepy(seconds: float, k: int) -> int:
    time.sleep(seconds)
    return k


@pipeline
def d_empty() -> None:
    pass


@pipeline
def d_many_tasks(n: int, start: int = 0) -> None:
    """`n` trivial tasks, submitted by the pipeline as it calls them."""
    for i in range(start, start + n):
        d_trivial(i)


@pipeline
def d_fan_out(n: int, start: int = 0) -> list:
    """`n` trivial tasks, all results returned (the dbnd spelling of `.map`)."""
    return [d_trivial(i) for i in range(start, start + n)]


@pipeline
def d_four_sleepers(seconds: float) -> list:
    """Four independent sleeping tasks."""
    return [d_sleepy(seconds, k) for k in range(4)]


@task(versioned=False)
def d_trivial_glue(i: int) -> int:
    return i + 1


@pipeline
def d_many_glue(n: int, start: int = 0) -> None:
    """`n` trivial unversioned tasks (`versioned=False`: in-memory outputs, no files, no cache record)."""
    for i in range(start, start + n):
        d_trivial_glue(i)


@pipeline
def d_chain(n: int, start: int = 0) -> int:
    """`n` trivial versioned tasks, each on the previous task's output."""
    value = start
    for _ in range(n):
        value = d_trivial(value)
    return value


@pipeline
def d_chain_glue(n: int, start: int = 0) -> int:
    """`n` trivial `versioned=False` tasks, each on the previous task's output."""
    value = start
    for _ in range(n):
        value = d_trivial_glue(value)
    return value
