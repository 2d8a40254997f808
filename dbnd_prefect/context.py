"""The run in effect: one `RunContext` per top-level call, shared by every task and nested pipeline in it.

A run is opened once per top-level call (a script, a notebook cell, `dbnd run`, a deployment's flow run)
from configuration resolved once (`ResolvedConfig`: run settings, profile, tracking), with its storage
chosen once. Every room reads the run from here; per-run state (the task runs so far, the Prefect tasks
bound to this run's storage, configured values already coerced) lives on it, never in module globals.
Opening and closing runs is `runtime/session.py`; this module only holds them.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from dbnd_prefect.config.model import DbndConfig
    from dbnd_prefect.config.profiles import ResolvedProfile
    from dbnd_prefect.config.resolved import ResolvedConfig
    from dbnd_prefect.config.settings import RunSettings
    from dbnd_prefect.config.tracking_settings import TrackingSettings
    from dbnd_prefect.versioning.records import RunStorage


class RunContext:
    """Everything a task run needs to know about the run it belongs to.

    Deliberately not a dataclass: a task run's parameter (its `BoundCall`) carries its run, and Prefect walks
    dataclasses inside parameters looking for futures; this per-run state is none of its business (and other
    threads add to it while a task run starts).
    """

    def __init__(self, resolved: "ResolvedConfig", storage: "RunStorage", run_date: dt.date, task_version: str | None,
                 run_uid: str, command_line: list[str] | None = None) -> None:
        self.resolved = resolved
        self.storage = storage
        self.run_date = run_date
        self.task_version = task_version  # `run.task_version`, with `now` resolved once for the whole run
        self.run_uid = run_uid
        self.command_line = command_line
        self.flow_run_id: str | None = None
        self.flow_run_name: str | None = None  # the name Prefect gave the root pipeline's flow run
        self.task_runs: list[Any] = []
        self.record_uri: str | None = None  # the run record, once the root pipeline has ended
        self.calls_in_tasks: dict[str, Any] = {}  # digest -> outputs of calls made in task bodies
        self.caller_env: str | None = None  # a run for `@task(task_env=...)` calls: the env of the run that made it
        self.env_runs: dict[str, RunContext] = {}  # env -> its run (`task_env` calls)
        self.prefect_tasks: dict[str, Any] = {}  # task identity -> its Prefect task here
        self.task_senders: list[Any] | None = None  # the profile's plugins' task senders (engine/task_senders.py)
        self.configured: dict[str, Any] = {}  # task name -> its configured values, coerced
        self.metric_logs: dict[str, Any] = {}  # Prefect run id -> metrics of a flow body
        self.profile_checked = False  # the profile's reach and task runner were checked for this run
        self.api: Any = None  # the Prefect API the run talks to (runtime/prefect_api.ApiChoice), chosen on first need

    def __repr__(self) -> str:
        return f"<run {self.run_uid} env={self.env}>"

    def __getstate__(self) -> dict[str, Any]:
        # what a task body in another process needs: settings and storage, not what this process collected
        return {**self.__dict__, "task_runs": [], "calls_in_tasks": {}, "env_runs": {}, "prefect_tasks": {}, "task_senders": None,
                "configured": {}, "metric_logs": {}}

    @property
    def config(self) -> "DbndConfig":
        return self.resolved.config

    @property
    def settings(self) -> "RunSettings":
        return self.resolved.settings

    @property
    def profile(self) -> "ResolvedProfile":
        return self.resolved.profile

    @property
    def tracking(self) -> "TrackingSettings":
        return self.resolved.tracking

    @property
    def env(self) -> str:
        return self.resolved.settings.env

    @property
    def data_root(self) -> str:
        return self.storage.data_root

    @property
    def verify(self) -> str:
        return self.resolved.settings.verify

    @property
    def target_date(self) -> dt.date | None:
        return self.resolved.settings.task_target_date

    @property
    def allow_foreign_pickle(self) -> bool:
        return self.resolved.settings.allow_foreign_pickle


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("dbnd_run", default=None)
_last: list[RunContext] = []  # the most recent finished run of this process (at most one)


def current_run() -> RunContext | None:
    """The run in effect, or None outside any dbnd run."""
    return _current.get()


def last_run() -> RunContext | None:
    """The most recent run started and finished in this process."""
    return _last[0] if _last else None


def set_last_run(run: RunContext) -> None:
    _last[:] = [run]


@contextlib.contextmanager
def entered(run: RunContext) -> Iterator[RunContext]:
    """Make `run` the run in effect for the block."""
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


@contextlib.contextmanager
def joined(run: RunContext) -> Iterator[RunContext]:
    """Make `run` the run in effect for the block, unless one already is (a task body in the driver).

    A task body that a task runner runs in another process (a Dask worker) arrives with its run's
    settings pickled inside its call; this makes them the run in effect there.
    """
    existing = _current.get()
    if existing is not None:
        yield existing
        return
    with entered(run):
        yield run


def last_run_summary(run: RunContext | None = None) -> str:
    """Human-readable lines: each task run's state and where its outputs were written."""
    run = run or last_run()
    if run is None:
        return "no run yet"
    lines = [f"run {run.flow_run_id or run.run_uid} (env {run.env}, data root {run.data_root})"]
    for entry in run.task_runs:
        lines.append(f"  {entry['task']}: {entry['state']}")
        for name, uri in entry.get("outputs", {}).items():
            lines.append(f"    {name:<16} {uri}")
    return "\n".join(lines)


__all__ = ["RunContext", "current_run", "last_run", "set_last_run", "entered", "joined", "last_run_summary"]
