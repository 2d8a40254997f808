"""prefect-dask's task runner as dbnd pipelines use it (imported only for a Dask run: it loads dask).

Registered in the plugin registry as the `dask` task runner (`dask_task_runner`).

`DbndDaskTaskRunner` is prefect-dask's `DaskTaskRunner` whose futures fetch each task run's final state from
the cluster once; `SharedDaskTaskRunner` lends a started runner's client to a nested pipeline (see
runners.py). A dbnd call gets a Dask token of its own.
"""

from __future__ import annotations

import copy
from typing import Any

from dask.base import normalize_token
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture

from dbnd_prefect import prefect_internals
from dbnd_prefect.calls import BoundCall


class FinalStateFuture(PrefectDaskFuture):
    """A Dask task run's future that fetches its final state from the cluster once.

    prefect-dask's `wait()` gathers the result from the worker on every call, even once the final state is
    known; a pipeline waits for all its task runs, then reads each one's state and outputs."""

    def wait(self, timeout: float | None = None) -> None:
        if prefect_internals.dask_final_state(self) is None:
            super().wait(timeout)


class DbndDaskTaskRunner(DaskTaskRunner):
    """DaskTaskRunner whose futures fetch each final state once."""

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        future = super().submit(task, parameters, wait_for, dependencies)
        return FinalStateFuture(task_run_id=future.task_run_id, wrapped_future=future.wrapped_future)


class SharedDaskTaskRunner(DbndDaskTaskRunner):
    """A started DaskTaskRunner's client, lent to a nested flow: entering and leaving the nested flow neither
    connects nor closes anything."""

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


@normalize_token.register(BoundCall)
def _call_token(call: BoundCall) -> tuple[Any, ...]:
    """Dask tokenizes every argument of a submitted function (prefect-dask submits with `pure=True`); without a
    token of its own a `BoundCall` was pickled whole, run settings included, on every submit (0.56 ms vs
    0.003 ms for an int). Its record key (the signature) and run identify it; the Dask task's key stays unique by
    the task run id Prefect passes beside it."""
    run = call.run
    return ("dbnd-call", call.record_key, run.run_uid if run is not None else None, call.run_name)


def dask_task_runner(spec: Any, profile: str) -> DbndDaskTaskRunner:
    """The runner of a `dask` profile: a running scheduler at `address`, or a local cluster of its size."""
    if spec.address:
        return DbndDaskTaskRunner(address=spec.address)
    cluster = {"n_workers": spec.n_workers, "threads_per_worker": spec.threads_per_worker}
    return DbndDaskTaskRunner(cluster_kwargs={"dashboard_address": "127.0.0.1:0", "host": "127.0.0.1",
                                              **{k: v for k, v in cluster.items() if v is not None}})
