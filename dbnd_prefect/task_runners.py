"""Task runners of dbnd pipelines beyond the profile's choice: a nested pipeline runs on its parent's Dask cluster.

A pipeline called inside another pipeline is a Prefect subflow, which runs its tasks on its own task runner:
for a dbnd pipeline that names none, the bounded thread pool of this process. Inside a pipeline that runs
its tasks on a Dask cluster, users expect the nested pipeline's tasks on that cluster too, so the nested
flow gets a runner that shares the parent's started Dask client (a second client could not wait on the
parent's futures, and a local cluster would be started twice). Light: dask loads only for a Dask run.
"""

from __future__ import annotations

import sys
from typing import Any


def dask_task_runner(**options: Any) -> Any:
    """prefect-dask's DaskTaskRunner with `options`, as a dbnd pipeline uses it (dask_runner.py)."""
    from dbnd_prefect.dask_runner import DbndDaskTaskRunner

    return DbndDaskTaskRunner(**options)


def nested_flow(flow: Any) -> Any:
    """`flow` (a nested pipeline called from a pipeline body) as it should run: on its parent's Dask client when
    the parent runs its tasks on Dask and the nested pipeline names no task runner of its own; else unchanged."""
    from prefect.context import FlowRunContext, TaskRunContext

    parent = FlowRunContext.get()
    if parent is None or TaskRunContext.get() is not None or getattr(flow, "names_task_runner", True) \
            or "prefect_dask" not in sys.modules:  # a Dask parent has loaded it
        return flow
    from prefect_dask import DaskTaskRunner

    if not isinstance(parent.task_runner, DaskTaskRunner):
        return flow
    from dbnd_prefect.dask_runner import SharedDaskTaskRunner
    from dbnd_prefect.run_profile import with_task_runner

    return with_task_runner(flow, SharedDaskTaskRunner(parent.task_runner))
