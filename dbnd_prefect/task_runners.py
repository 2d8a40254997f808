"""What dbnd adds to Prefect's Dask task runner (prefect-dask): nested pipelines on their parent's cluster,
and a cheap Dask name for each submitted call.

A pipeline called inside another pipeline is a Prefect subflow, which runs its tasks on its own task runner:
for a dbnd pipeline that names none, the bounded thread pool of this process. Inside a pipeline that runs
its tasks on a Dask cluster, users expect the nested pipeline's tasks on that cluster too, so the nested
flow gets a runner that shares the parent's started Dask client (a second client could not wait on the
parent's futures, and a local cluster would be started twice).
"""

from __future__ import annotations

import copy
from typing import Any

_tokens_registered = False


def nested_flow(flow: Any) -> Any:
    """`flow` (a nested pipeline called from a pipeline body) as it should run: on its parent's Dask client when
    the parent runs its tasks on Dask and the nested pipeline names no task runner of its own; else unchanged."""
    from prefect.context import FlowRunContext, TaskRunContext

    parent = FlowRunContext.get()
    if parent is None or TaskRunContext.get() is not None or getattr(flow, "names_task_runner", True):
        return flow
    runner = parent.task_runner
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        return flow
    if not isinstance(runner, DaskTaskRunner):
        return flow
    from dbnd_prefect.profiles import with_task_runner

    return with_task_runner(flow, _shared_runner(runner))


_shared_class: Any = None


def _shared_runner(parent: Any) -> Any:
    """A runner that uses `parent`'s (a started DaskTaskRunner) client."""
    global _shared_class
    if _shared_class is None:
        from prefect_dask import DaskTaskRunner

        class SharedDaskTaskRunner(DaskTaskRunner):
            """A started DaskTaskRunner's client, lent to a nested flow: entering and leaving the nested flow
            neither connects nor closes anything."""

            def __init__(self, lender: Any) -> None:
                super().__init__(address=lender.address, client_kwargs=lender.client_kwargs)
                self._lender = lender

            @property
            def client(self) -> Any:
                return self._lender.client  # the parent's (connected on its first submit, or now)

            def duplicate(self) -> "SharedDaskTaskRunner":
                return type(self)(self._lender)

            def __reduce__(self) -> tuple[Any, ...]:
                # pickled with the nested flow into each task run's context: the settings, never the client
                return (copy.copy, (self._lender.duplicate(),))

        _shared_class = SharedDaskTaskRunner
    return _shared_class(parent)


def register_dask_tokens() -> None:
    """Name a dbnd call in Dask by its record key and run, not by pickling it whole.

    Dask tokenizes every argument of a submitted function (prefect-dask submits with `pure=True`); a
    `BoundCall` has no Dask token of its own, so Dask pickled it, run settings included, on every submit
    (0.56 ms vs 0.003 ms for an int). Its record key (the signature) and run identify it; the key of the Dask
    task stays unique by the task run id Prefect passes beside it.
    """
    global _tokens_registered
    if _tokens_registered:
        return
    from dask.base import normalize_token

    from dbnd_prefect.calls import BoundCall

    @normalize_token.register(BoundCall)
    def _call_token(call: BoundCall) -> tuple[Any, ...]:
        run = call.run
        return ("dbnd-call", call.record_key, run.run_uid if run is not None else None, call.run_name)

    _tokens_registered = True
