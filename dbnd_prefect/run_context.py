"""The run in effect: configuration, environment, data root and version override.

A `RunContext` is made once per top-level call (a script, a notebook cell, `dbnd run`, or a
deployment's flow run) and shared by every task and nested pipeline inside it, so that
configuration and storage are resolved once per run, never once per task.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import os
import uuid
from typing import Any, Iterator



@dataclasses.dataclass
class RunContext:
    """Everything a task run needs to know about the run it belongs to."""

    config: Any
    env: str
    data_root: str
    run_date: dt.date
    task_version: str | None
    verify: str
    run_uid: str
    storage: Any
    command_line: list[str] | None = None
    target_date: dt.date | None = None  # `run.task_target_date`: part of signatures and output paths
    allow_foreign_pickle: bool = False  # `run.allow_foreign_pickle`: pickle inputs from outside the data root load
    flow_run_id: str | None = None
    flow_run_name: str | None = None  # the name Prefect gave the root pipeline's flow run
    task_runs: list[Any] = dataclasses.field(default_factory=list)
    record_uri: str | None = None  # the run record, once the root pipeline has ended
    calls_in_tasks: dict[str, Any] = dataclasses.field(default_factory=dict)  # digest -> TaskOutputs of calls made in task bodies
    caller_env: str | None = None  # a run for `@task(task_env=...)` calls: the env of the run that made it
    env_runs: dict[str, "RunContext"] = dataclasses.field(default_factory=dict)  # env -> its run (`task_env` calls)

    def __getstate__(self) -> dict[str, Any]:
        # what a task body in another process needs: settings and storage, not the runs collected so far
        return {**self.__dict__, "task_runs": [], "calls_in_tasks": {}, "env_runs": {}}

    def task_section(self, task_name: str) -> dict[str, Any]:
        """Configured values for a task's parameters: its own section over `[task]`, by layer."""
        from dbnd_prefect.config import task_values

        return task_values(self.config, task_name)

    def overrides_for(self, task_name: str) -> dict[str, Any]:
        return self.config.overrides_for(task_name)


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("dbnd_run", default=None)


_last: RunContext | None = None


def last_run() -> RunContext | None:
    """The most recent run started and finished in this process."""
    return _last


def last_run_summary(run: RunContext | None = None) -> str:
    """Human-readable lines: each task run's state and where its outputs were written."""
    run = run or _last
    if run is None:
        return "no run yet"
    lines = [f"run {run.flow_run_id or run.run_uid} (env {run.env}, data root {run.data_root})"]
    for entry in run.task_runs:
        lines.append(f"  {entry['task']}: {entry['state']}")
        for name, uri in entry.get("outputs", {}).items():
            lines.append(f"    {name:<16} {uri}")
    return "\n".join(lines)


def current_run() -> RunContext | None:
    """The run in effect, or None outside any dbnd run."""
    return _current.get()


def config_in_effect() -> Any:
    """The configuration of the run in effect, else the current one (project files, environment, context)."""
    run = _current.get()
    if run is not None:
        return run.config
    from dbnd_prefect.config import current_config

    return current_config()


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
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


def _resolve_version(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if str(value).lower() == "now":
        return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
    return str(value)


def make_run_context(config: Any = None, command_line: list[str] | None = None) -> RunContext:
    """Build the context of a new run from configuration (the current one by default)."""
    from dbnd_prefect.config import current_config, run_settings

    from dbnd_prefect.storage import resolve_storage

    config = config if config is not None else current_config()
    settings = run_settings(config)
    env = settings.env
    storage = resolve_storage(settings.data_root, settings.storage_block, settings.api)
    return RunContext(
        config=config,
        env=env,
        data_root=storage.data_root,
        run_date=settings.task_target_date or dt.date.today(),
        target_date=settings.task_target_date,
        task_version=_resolve_version(settings.task_version),
        verify=settings.verify,
        run_uid=uuid.uuid4().hex[:12],
        storage=storage,
        command_line=command_line,
        allow_foreign_pickle=settings.allow_foreign_pickle,
    )


@contextlib.contextmanager
def ensure_run(config: Any = None) -> Iterator[RunContext]:
    """Use the run in effect, or start a new one for the duration of the block."""
    existing = _current.get()
    if existing is not None:
        yield existing
        return
    global _last
    run = make_run_context(config)
    token = _current.set(run)
    try:
        yield run
    finally:
        from dbnd_prefect.prefect_quiet import finish_run

        finish_run(run)
        _current.reset(token)
        _last = run
        from dbnd_prefect.fingerprint import clear_fingerprint_cache

        clear_fingerprint_cache()  # the next run must see values edited in place


def default_task_runner() -> Any:
    """The task runner of a pipeline that names none: Prefect's thread pool, bounded.

    Prefect's pool is unbounded by default, so a pipeline that submits tasks faster than they finish
    starts a thread per task; hundreds of threads then contend for the GIL and Prefect's service
    locks (measured: 18% more time per trivial task). The bound is Python's own for I/O-bound pools,
    min(32, cores + 4), unless PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS sets one.
    """
    from prefect.settings import get_current_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    configured = get_current_settings().tasks.runner.thread_pool_max_workers
    return ThreadPoolTaskRunner(max_workers=configured or min(32, (os.cpu_count() or 1) + 4))
