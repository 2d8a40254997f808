"""The 100-task chain for `dbnd run` with dbnd_prefect: each task takes the previous task's output.

    dbnd run chain_dbnd_prefect.chain --set chain.n=100 --task-version now

The same chain as `chain_dbnd_original.py` (the original DBND 1.0.34), so the two whole processes compare.
"""

from __future__ import annotations

from dbnd_prefect import pipeline, task


@task
def step(value: int, work: int = 0) -> int:
    # the same work as bench/chain_raw_script.py's `compute`: `work` squares summed (0: a trivial task)
    return value + 1 + sum(i * i for i in range(work)) % 1


@pipeline
def chain(n: int = 10, work: int = 0) -> int:
    """`n` steps, each on the previous step's output, each summing `work` squares."""
    value = 0
    for _ in range(n):
        value = step(value, work)
    return value
