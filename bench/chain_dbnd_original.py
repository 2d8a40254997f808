"""The 100-task chain for the ORIGINAL DBND 1.0.34 (runs in `.cache/bench-dbnd-venv`, never in .venv).

    DBND_HOME=PROJECT dbnd run chain_dbnd_original.chain --set chain.n=100 --task-version now

The same chain as `chain_dbnd_prefect.py`, in DBND's own API: each task takes the previous task's output.
"""

from __future__ import annotations

from dbnd import pipeline, task


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
