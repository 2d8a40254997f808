"""The same chain as `chain_dbnd_prefect.py` as a raw Prefect script: a flow of `n` tasks, each on the previous
task's output, each computing `work` squares (the same `compute` on every side of the `system` measure).

    python bench/chain_raw_script.py --n 100 --work 20000                   # results not persisted
    python bench/chain_raw_script.py --n 100 --work 20000 --persist results # results persisted to a Path

The sync-flow heartbeat is off, as dbnd_prefect runs its flows (otherwise the flow waits up to 1 s at its end).
Prints `steps: N` when the flow returned.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow, task


def compute(value: int, work: int) -> int:
    """The work each task of the chain does on every side: `work` squares summed, then the next value."""
    return value + 1 + sum(i * i for i in range(work)) % 1


@task
def step(value: int, work: int = 0) -> int:
    return compute(value, work)


STEP = step


@flow
def chain(n: int = 10, work: int = 0) -> int:
    value = 0
    for _ in range(n):
        value = STEP(value, work)
    return value


def main() -> None:
    global STEP
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--work", type=int, default=0)
    parser.add_argument("--persist", default=None, help="persist each task's result to this folder")
    args = parser.parse_args()
    if args.persist:
        STEP = step.with_options(persist_result=True, result_storage=Path(args.persist).resolve())
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        result = chain(args.n, args.work)
    print(f"steps: {result}")


if __name__ == "__main__":
    main()
