"""A dry run: walk a pipeline's wiring without running anything, and say what would run and why.

Each task call in the pipeline body is recorded with its resolved arguments and its signature, and
checked against the stored outputs: `hit` (verified outputs exist: it would be reused), `stale`
(outputs recorded but gone or changed: it would be recomputed) or `miss` (never ran with this
signature, with the difference to its latest stored version).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dbnd_prefect.calls import BoundCall, bind
from dbnd_prefect.context import RunContext, joined
from dbnd_prefect.engine.calling import run_for
from dbnd_prefect.engine.scope import PipelineScope
from dbnd_prefect.engine.task_senders import sender_for
from dbnd_prefect.outputs import StoredOutput, TaskOutputs
from dbnd_prefect.runtime.session import ensure_run


@dataclasses.dataclass
class PlannedTask:
    """One task call of a planned run."""

    task: Any
    arguments: dict[str, Any]
    signature: Any
    status: str
    reason: str
    output_dir: str
    outputs: dict[str, str]
    runs_on: str | None = None  # where it would run when not here: "a Databricks job on cluster X ..."


def task_status(task: Any, signature: Any, run: RunContext,
                versions: dict[str, list[dict[str, Any]]] | None = None) -> tuple[str, str, TaskOutputs | None]:
    """(status, reason, stored outputs when reusable) of a task run with `signature`.

    `versions` caches each task's stored versions across the calls of one plan (listing them reads
    every manifest of the task).
    """
    from dbnd_prefect.history.versions import explain_difference, list_versions
    from dbnd_prefect.versioning.verify import NO_RECORD, stored_version

    reason, stored = stored_version(run.storage, signature.digest, run.verify == "full")
    if reason is None:
        return "hit", "outputs stored with this signature verify", stored
    if reason != NO_RECORD:
        return "stale", reason, None
    versions = {} if versions is None else versions
    if task.name not in versions:
        versions[task.name] = list_versions(run.data_root, task.name, run.env)
    previous = versions[task.name]
    if not previous:
        return "miss", "never ran in this environment", None
    # Compare with the stored version that differs least (a task called several times, or a reproduce
    # run, would otherwise explain the difference to the wrong neighbour).
    reasons = min((explain_difference(v.get("signature_parts", {}), signature.parts()) for v in previous[:50]),
                  key=len)
    return "miss", "; ".join(reasons) or "no stored outputs for this signature", None


class PlanScope(PipelineScope):
    """Records task calls instead of running them."""

    dry = True

    def __init__(self) -> None:
        super().__init__()
        self.planned: list[PlannedTask] = []
        self._versions: dict[str, list[dict[str, Any]]] = {}

    def submit(self, call: BoundCall) -> TaskOutputs:
        from dbnd_prefect.targets.output_choice import OutputRequest, planned_uri

        task, arguments, signature, run = call.task, call.arguments, call.signature, call.run
        if task.versioned:
            status, reason, stored = task_status(task, signature, run, self._versions)
        else:
            status, reason, stored = "miss", "not versioned (versioned=False): always runs, stores nothing", None
        folder = call.output_dir
        if stored is None:
            predicted = {}
            for spec in task.outputs if task.versioned else ():
                if not spec.returned:  # a file the task writes itself
                    fmt, uri = "file", f"{folder}/{spec.name}{spec.file.extension}"
                elif spec.format or spec.type_key != "object":
                    request = OutputRequest(spec.name, spec.format, run.config.get("formats", spec.type_key),
                                            lines=spec.lines, frames=spec.frames)
                    uri, fmt = planned_uri(folder, request, spec.type_key)
                else:  # unannotated: the returned value's type picks the format when it is written
                    fmt, uri = "by value", f"{folder}/{spec.name}.*"
                predicted[spec.name] = StoredOutput(uri=uri, format=fmt, type_key=spec.type_key)
            stored = TaskOutputs(task.name, signature.digest, [o.name for o in task.outputs], predicted, None)
        sender = sender_for(task, run) if status != "hit" else None
        self.planned.append(PlannedTask(
            task=task, arguments=arguments, signature=signature, status=status, reason=reason,
            output_dir=folder, outputs={n: s.uri for n, s in stored.stored.items()},
            runs_on=sender.where if sender is not None else None,
        ))
        return stored


def plan(obj: Any, *args: Any, **kwargs: Any) -> list[PlannedTask]:
    """The task calls a run of `obj` (a task or pipeline) called with `args` and `kwargs` would make, with
    their reuse status."""
    with ensure_run() as run:
        return plan_call(bind(obj, args, kwargs, run_for(obj, run)), run)


def plan_call(call: BoundCall, run: RunContext) -> list[PlannedTask]:
    """The task calls that `call` (a bound top-level call in `run`) would make, with their reuse status."""
    with joined(run), PlanScope.enter() as scope:
        if call.task.kind == "task":
            scope.submit(call)
        else:  # the body runs here; its task calls are recorded
            call.task.call_function(call.loadable())
    return scope.planned


def format_plan(planned: list[PlannedTask], show_arguments: bool = True) -> str:
    """The plan as text: one block per task with status, reason, arguments and output targets."""
    lines = []
    for item in planned:
        lines.append(f"{item.task.name}  [{item.status}]  signature {item.signature.short}")
        lines.append(f"    why: {item.reason}")
        if item.runs_on:
            lines.append(f"    runs as: {item.runs_on}")
        if show_arguments:
            for name, value in item.arguments.items():
                lines.append(f"    {name} = {_show(value)}")
        for name, uri in item.outputs.items():
            lines.append(f"    -> {name}: {uri}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    from dbnd_prefect.outputs import OutputRef

    if isinstance(value, OutputRef):
        return f"<{value.name} of {getattr(value.source, 'task_name', '?')}>"
    text = repr(value) if not hasattr(value, "uri") else str(value)
    return text if len(text) < 100 else text[:97] + "..."


__all__ = ["plan", "plan_call", "format_plan", "PlannedTask", "task_status"]
