"""Raw Prefect flows for the benchmarks: tasks called the natural Prefect way. Imports only Prefect."""

from __future__ import annotations

import time

from prefect import flow, task


@task
def trivial(i: int) -> int:
    return i + 1


@task
def sleepy(seconds: float, k: int) -> int:
    time.sleep(seconds)
    return k


@flow
def empty_flow() -> None:
    pass


@flow
def many_tasks(n: int, start: int = 0) -> None:
    """`n` trivial tasks called directly, one after the other."""
    for i in range(start, start + n):
        trivial(i)


@flow
def many_tasks_submitted(n: int, start: int = 0) -> None:
    """`n` trivial tasks submitted to the default thread-pool task runner, then waited for."""
    futures = [trivial.submit(i) for i in range(start, start + n)]
    for future in futures:
        future.wait()


@flow
def mapped_tasks(n: int, start: int = 0) -> list[int]:
    """`n` trivial tasks as one `.map`, results gathered."""
    return trivial.map(range(start, start + n)).result()


@flow
def four_sleepers_direct(seconds: float) -> list[int]:
    """Four independent sleeping tasks called directly (they run one after the other)."""
    return [sleepy(seconds, k) for k in range(4)]


@flow
def four_sleepers_submitted(seconds: float) -> list[int]:
    """Four independent sleeping tasks submitted to the default thread-pool task runner."""
    futures = [sleepy.submit(seconds, k) for k in range(4)]
    return [f.result() for f in futures]


@flow
def chain(n: int, start: int = 0) -> int:
    """`n` trivial tasks called directly, each on the previous task's output."""
    value = start
    for _ in range(n):
        value = trivial(value)
    return value


@flow
def chain_submitted(n: int, start: int = 0) -> int:
    """The same chain with `.submit()`, each task given the previous task's future (what dbnd does)."""
    value: object = start
    for _ in range(n):
        value = trivial.submit(value)
    return value.result() if n else start  # type: ignore[union-attr]
