"""What a finished run hands back: its values, and each task's outputs loaded from where they were written."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from dbnd_prefect.definitions import registry
from dbnd_prefect.errors import DbndError, suggest
from dbnd_prefect.targets import Target

if TYPE_CHECKING:
    from dbnd_prefect.context import RunContext


@dataclasses.dataclass
class RunResult:
    """What a finished run returned and where its outputs are."""

    values: Any
    run: "RunContext"
    task: Any = None  # the task or pipeline that was run

    @property
    def task_outputs(self) -> dict[str, dict[str, str]]:
        """Where each task of the run wrote its outputs: `{task: {output: uri}}` (its last call)."""
        return {e["task"]: dict(e.get("outputs", {})) for e in self.run.task_runs}

    def load(self, name: str) -> Any:
        """One output, loaded: a name the run's task or pipeline gives its outputs (`result=`), or `TASK.OUTPUT`.

        A task's outputs are read from where they were written; a pipeline's named results are the
        values it returned.
        """
        root = self.task
        pipeline_names = getattr(root, "result_names", None)
        if pipeline_names and name in pipeline_names:
            values = self.values if len(pipeline_names) > 1 else (self.values,)
            return values[pipeline_names.index(name)]
        task_name, dot, output = name.rpartition(".")
        if not dot and root is not None and hasattr(root, "outputs"):
            task_name, output = root.name, name
        if task_name:
            loaded = load_task_outputs(self.run, task_name)
            if output in loaded:
                return loaded[output]
        known = [*(pipeline_names or []), *(f"{t}.{o}" for t, outs in self.task_outputs.items() for o in outs)]
        if root is not None and hasattr(root, "outputs"):
            known = [o.name for o in root.outputs] + known
        raise DbndError(f"no output '{name}' in this run{suggest(name, known)}",
                        hint=f"outputs: {', '.join(known) or 'none'}")

    def task_run(self, task_name: str) -> dict[str, Any]:
        """The summary entry of the last run of `task_name` in this run (see `RunContext.task_runs`)."""
        return task_run_entry(self.run, task_name)

    def outputs(self, task_name: str) -> dict[str, Any]:
        """The outputs of the last run of `task_name` in this run, loaded from where they were written."""
        return load_task_outputs(self.run, task_name)


def task_run_entry(run: "RunContext", task_name: str) -> dict[str, Any]:
    """The last `task_runs` entry of `task_name`; DbndError listing the tasks that ran when absent."""
    entries = [e for e in run.task_runs if e.get("task") == task_name]
    if not entries:
        ran = sorted({e.get("task") for e in run.task_runs})
        raise DbndError(f"task '{task_name}' did not run in run {run.run_uid}{suggest(task_name, ran)}",
                        hint=f"tasks in that run: {', '.join(ran) or 'none'}")
    return entries[-1]


def load_task_outputs(run: "RunContext", task_name: str) -> dict[str, Any]:
    """The outputs of `task_name`'s last run in `run`, by name, loaded from their files."""
    entry = task_run_entry(run, task_name)
    manifest_uri = entry.get("manifest")
    if not manifest_uri:
        raise DbndError(f"task '{task_name}' finished as {entry.get('state')} with no stored outputs",
                        hint="only completed task runs have outputs")
    manifest = Target(manifest_uri, format="json").load("dict")
    task = registry.all_items().get(task_name)
    values: dict[str, Any] = {o.name: None for o in getattr(task, "outputs", [])}  # None outputs are not stored
    for name, info in manifest.get("outputs", {}).items():
        values[name] = Target(info["uri"], format=info.get("format")).load(info.get("type_key"))
    return values


__all__ = ["RunResult", "task_run_entry", "load_task_outputs"]
