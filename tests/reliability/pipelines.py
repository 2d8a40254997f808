"""The pipeline the reliability tests run in real subprocesses, and the note it leaves for them.

    python -m tests.reliability.pipelines [N_PARTS] [CHAIN]

runs `write_many` in the working directory's configuration (its `dbnd.toml` names the data root) and
prints one JSON line: each task run's task, state and signature. When RELIABILITY_LOG names a file,
the pipeline appends `PID started` when its body begins and `PID body TASK ARGS` each time a task body
runs, so a test knows which task bodies ran in a process it then killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Tuple

import numpy as np
import pandas as pd

from dbnd_prefect import pipeline, task


def note(event: str) -> None:
    """Append one line to $RELIABILITY_LOG (O_APPEND: lines of concurrent processes do not interleave)."""
    path = os.environ.get("RELIABILITY_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {event}\n".encode())
        finally:
            os.close(fd)


@task(result="frame, stats")
def make_part(i: int, rows: int = 20_000) -> Tuple[pd.DataFrame, dict]:
    note(f"body make_part i={i}")
    rng = np.random.default_rng(i)
    frame = pd.DataFrame({"i": i, "x": rng.random(rows), "y": rng.integers(0, 1000, rows)})
    return frame, {"i": i, "sum": float(frame["x"].sum())}


@task
def step(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    note(f"body step k={k}")
    return frame.assign(x=frame["x"] + k)


@task
def combine(stats: list) -> dict:
    note("body combine")
    return {"parts": len(stats), "sum": sum(s["sum"] for s in stats)}


@pipeline
def write_many(n_parts: int = 8, chain: int = 6):
    note("started")
    frames, stats = [], []
    for i in range(n_parts):
        frame, part_stats = make_part(i)
        frames.append(frame)
        stats.append(part_stats)
    last = frames[0]
    for k in range(chain):
        last = step(last, k)
    return last, combine(stats)


def _wait_for_file(variable: str) -> None:
    """Block until the file named by $variable exists (a gate the test opens), if the variable is set."""
    path = os.environ.get(variable)
    deadline = time.monotonic() + 120
    while path and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)


@task
def before_outage(n: int = 3) -> pd.DataFrame:
    note("body before_outage")
    return pd.DataFrame({"v": range(n)})


@task(retries=2, retry_delay_seconds=1)
def during_outage(frame: pd.DataFrame) -> pd.DataFrame:
    """Stops at a gate so the test can stop the store before the output is written: on the first attempt
    at $RELIABILITY_GATE, on a retry at $RELIABILITY_RETRY_GATE."""
    from prefect.context import TaskRunContext

    attempt = TaskRunContext.get().task_run.run_count
    note(f"body during_outage attempt={attempt}")
    _wait_for_file("RELIABILITY_GATE" if attempt <= 1 else "RELIABILITY_RETRY_GATE")
    return frame.assign(w=frame["v"] * 2)


@task
def after_outage(frame: pd.DataFrame) -> dict:
    note("body after_outage")
    return {"sum": int(frame["w"].sum())}


@pipeline
def store_outage(n: int = 3):
    note("started")
    return after_outage(during_outage(before_outage(n)))


def main(argv: list[str]) -> None:
    from dbnd_prefect.context import last_run

    n_parts, chain = (int(a) for a in (argv + ["8", "6"])[:2])
    _, totals = write_many(n_parts, chain)
    runs = [{"task": e["task"], "state": e["state"], "signature": e.get("signature")} for e in last_run().task_runs]
    print(json.dumps({"task_runs": runs, "totals": totals, "flow_run_id": last_run().flow_run_id}))


if __name__ == "__main__":
    main(sys.argv[1:])
