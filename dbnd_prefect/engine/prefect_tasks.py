"""The Prefect task behind a dbnd task: made once per definition, and once per run with the run's storage.

A versioned task persists its result (a `TaskOutputs` naming the stored files) as a cache record under its
signature's key (versioning/policy.py) in the run's records folder; an unversioned one persists nothing.
Both get the run's saved storage block: Prefect resolves an unsaved default storage's path on every result.

With `run.serialize` (the default) a versioned task's policy is SERIALIZABLE with a lock per signature
(engine/signature_locks.py): when several processes or threads want the same signature at once, one computes
and the others wait in Prefect's transaction, then find the record and reuse it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from dbnd_prefect.errors import ParameterError, suggest

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext
    from dbnd_prefect.outputs import TaskOutputs


def check_options(kind: str, name: str, options: Mapping[str, Any], prefect_cls: type, own: Sequence[str]) -> None:
    """ParameterError for a decorator option that neither dbnd nor Prefect's Task/Flow knows."""
    known = [p for p in inspect.signature(prefect_cls.__init__).parameters if p not in ("self", "fn")]
    for option in options:
        if option not in known:
            raise ParameterError(f"@{kind} {name}: unknown option '{option}'{suggest(option, [*own, *known])}",
                                 hint=f"dbnd options: {', '.join(own)}; the rest go to prefect.{prefect_cls.__name__}")


def make_prefect_task(task: Any, prefect_options: Mapping[str, Any]) -> Any:
    """The Prefect task that runs `task` (a dbnd task definition) through the task body."""
    import prefect

    from dbnd_prefect.versioning.policy import SignaturePolicy

    def body(call: "BoundCall") -> "TaskOutputs":
        from dbnd_prefect.engine.task_body import run_task_body  # the data stack loads with the first run

        return run_task_body(call)

    for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
        setattr(body, attr, getattr(task.func, attr, None))
    options = dict(prefect_options)
    if task.versioned:
        from dbnd_prefect.record_store import RecordSerializer

        # the record holds a TaskOutputs (names and URIs, never the values), pickled with the standard pickle
        # (10 µs where Prefect's default cloudpickle takes 15) under a digest checked before unpickling, in
        # whatever storage keeps the records (a remote storage block's too)
        options.setdefault("result_serializer", RecordSerializer())
        return prefect.Task(fn=body, name=task.name, cache_policy=SignaturePolicy(), persist_result=True, **options)
    from prefect.cache_policies import NO_CACHE

    return prefect.Task(fn=body, name=task.name, cache_policy=NO_CACHE, persist_result=False, **options)


def prefect_task_for(task: Any, run: "RunContext", run_name: str | None = None) -> Any:
    """The Prefect task that keeps `task`'s cache records beside `run`'s data (made once per run), serialized
    per signature when `run.serialize` is on and the root is local."""
    variant = run.prefect_tasks.get(task.task_id)
    if variant is None:
        from dbnd_prefect.engine.signature_locks import signature_locks

        options: dict[str, Any] = {"result_storage": run.storage.result_storage}
        # a task_env call's caller only submits it (run.caller_env is set): the worker's run takes the lock
        locks = signature_locks(run) if task.versioned and not (task.task_env and run.caller_env) else None
        if locks is not None:
            from prefect.transactions import IsolationLevel

            options["cache_policy"] = task.prefect_task.cache_policy.configure(
                isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=locks)
        variant = run.prefect_tasks.setdefault(task.task_id, task.prefect_task.with_options(**options))
    return variant if run_name is None else variant.with_options(task_run_name=run_name)


__all__ = ["check_options", "make_prefect_task", "prefect_task_for"]
