"""The Prefect task behind a dbnd task: made once per definition, and once per run with the run's storage.

A versioned task persists its result (a `TaskOutputs` naming the stored files) as a cache record under its
signature's key (versioning/policy.py) in the run's records folder; an unversioned one persists nothing.
Both get the run's saved storage block: Prefect resolves an unsaved default storage's path on every result.
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
        from prefect.serializers import PickleSerializer

        # the record holds a TaskOutputs (names and URIs, never the values): the standard pickle
        # writes it in 10 µs where Prefect's default cloudpickle takes 15 µs
        options.setdefault("result_serializer", PickleSerializer(picklelib="pickle"))
        return prefect.Task(fn=body, name=task.name, cache_policy=SignaturePolicy(), persist_result=True, **options)
    from prefect.cache_policies import NO_CACHE

    return prefect.Task(fn=body, name=task.name, cache_policy=NO_CACHE, persist_result=False, **options)


def prefect_task_for(task: Any, run: "RunContext", run_name: str | None = None) -> Any:
    """The Prefect task that keeps `task`'s cache records beside `run`'s data (made once per run)."""
    variant = run.prefect_tasks.get(task.task_id)
    if variant is None:
        variant = run.prefect_tasks.setdefault(
            task.task_id, task.prefect_task.with_options(result_storage=run.storage.result_storage))
    return variant if run_name is None else variant.with_options(task_run_name=run_name)


__all__ = ["check_options", "make_prefect_task", "prefect_task_for"]
