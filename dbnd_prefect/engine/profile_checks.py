"""A run in its profile: checked once before anything runs, then its pipelines run with the profile's environment
variables and task runner."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, Iterator

from dbnd_prefect.config.reach import check_data_reachable, check_inputs_reachable
from dbnd_prefect.engine.remote_caller import check_task_envs
from dbnd_prefect.engine.task_senders import senders_of
from dbnd_prefect.engine.runners import environment_variables, task_runner_for, with_task_runner

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext


def check_profile(run: "RunContext", root: "BoundCall | None" = None) -> None:
    """Before anything runs, once per run: the profile's work can reach the data root and the data inputs of
    the root call, each task with a `task_env` of its own can be submitted there, and the task runner's
    package is installed (the runner is made, not started: it connects to nothing)."""
    if run.profile_checked:
        return
    settings = run.settings
    check_data_reachable(run.profile, settings.data_root, settings.storage_block)
    if root is not None:
        inputs = {name: getattr(value, "uri", value) for name, value in root.arguments.items()
                  if root.task.param_map[name].is_data and isinstance(getattr(value, "uri", value), (str, os.PathLike))}
        check_inputs_reachable(run.profile, root.task.name, inputs)
        check_task_envs(root.task, run)  # tasks with a task_env of their own: the profile and its work pool
    for sender in senders_of(run):  # tasks the profile sends elsewhere (a Databricks job): settings, credentials
        sender.check(run)
    task_runner_for(run.profile)
    run.profile_checked = True


@contextlib.contextmanager
def profile_applied(flow: Any, run: "RunContext", root: "BoundCall | None" = None) -> Iterator[Any]:
    """Run `flow` (a pipeline) in `run`'s profile: checked (once per run), with its environment variables set;
    yields the flow to call, a copy with the profile's task runner when the profile names one."""
    check_profile(run, root)
    runner = task_runner_for(run.profile)
    with environment_variables(run.profile.profile.env):
        yield flow if runner is None else with_task_runner(flow, runner)


__all__ = ["check_profile", "profile_applied"]
