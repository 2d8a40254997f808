"""The signature of one call of a task in a run: the task's identity and code, its significant inputs'
fingerprints, its task version, environment and target date (see fingerprint/signature.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Mapping

from dbnd_prefect.config.settings import task_values
from dbnd_prefect.fingerprint.signature import Signature, compute_signature
from dbnd_prefect.versioning.inputs import fingerprint_input

if TYPE_CHECKING:
    from dbnd_prefect.context import RunContext


def resolve_version(value: Any) -> str | None:
    """A task version as configured: `now` becomes a timestamp (resolve it once per run)."""
    if value in (None, ""):
        return None
    if str(value).lower() == "now":
        return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    return str(value)


def task_version_for(task: Any, run: "RunContext | None") -> str | None:
    """The version of `task` in `run`: its own `TASK.task_version` setting unless a higher layer set
    `run.task_version`, else the run's, else the decorator's."""
    if run is None:
        return task.task_version
    configured = task_values(run.config, task.name).get("task_version")
    global_value = run.config.get_value("run", "task_version")
    if configured is not None and (global_value is None or configured.rank >= global_value.rank):
        return resolve_version(configured.value)
    return run.task_version or task.task_version


def sign(task: Any, inputs: Mapping[str, Any], run: "RunContext | None", task_version: str | None = None,
         target_date: str | None = None) -> Signature:
    """The signature of a call of `task` with these (unloaded) inputs in `run`; `task_version` and
    `target_date` are a call site's own, beating the run's."""
    full = bool(run and run.settings.input_fingerprint == "content")
    fingerprints = {
        name: fingerprint_input(task.param_map.get(name), value, full)
        for name, value in inputs.items()
        if name not in task.non_significant
    }
    version = task_version if task_version is not None else task_version_for(task, run)
    if target_date is None and run is not None and run.target_date:
        target_date = run.target_date.isoformat()
    return compute_signature(task.task_id, task.code_fingerprint, fingerprints, version,
                             run.env if run else "local", target_date)


__all__ = ["resolve_version", "task_version_for", "sign"]
