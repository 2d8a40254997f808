"""The task runner and environment a run's pipelines execute in, as its profile says.

A profile's `task_runner` table picks a Prefect task runner through the plugin registry (`thread` here,
`dask` and `ray` in their own modules, imported only when a profile names them); `environment_variables`
sets a profile's variables around a block. A nested pipeline inside a pipeline that runs on Dask shares the
parent's Dask client.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import threading
from typing import Any, Iterator, Mapping

from dbnd_prefect import plugins
from dbnd_prefect.config.profile_model import ResolvedProfile, ThreadRunner



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


def thread_task_runner(spec: ThreadRunner, profile: str) -> Any:
    """Prefect's thread pool of a `thread` profile (the library's bounded default without max_workers)."""
    if spec.max_workers is None:
        return default_task_runner()
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=spec.max_workers)


def task_runner_for(resolved: ResolvedProfile) -> Any:
    """The Prefect task runner the profile asks for, or None when it configures none (the pipeline's
    own runner, the bounded thread pool by default, stays)."""
    if not resolved.configured("task_runner"):
        return None
    spec = resolved.profile.task_runner
    return plugins.task_runner_factory(spec.type, resolved.name)(spec, resolved.name)


_env_lock = threading.Lock()
# key -> [value before the first block that set it, blocks using it]: blocks overlap on a worker running
# several task bodies of a run at once, and the variable must stay until the last of them ends
_env_users: dict[str, list[Any]] = {}


@contextlib.contextmanager
def environment_variables(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in this process's environment for the block; earlier values come back after the last
    block (of any thread) that set them."""
    if not values:
        yield
        return
    with _env_lock:
        for key, value in values.items():
            users = _env_users.setdefault(key, [os.environ.get(key), 0])
            users[1] += 1
            os.environ[key] = value
    try:
        yield
    finally:
        with _env_lock:
            for key in values:
                users = _env_users[key]
                users[1] -= 1
                if users[1]:
                    continue
                del _env_users[key]
                if users[0] is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = users[0]


def with_task_runner(flow: Any, runner: Any) -> Any:
    """A copy of a Prefect flow that runs its tasks on `runner` (the flow itself is left as it is)."""
    changed = copy.copy(flow)
    changed.task_runner = runner
    return changed


def nested_flow(flow: Any) -> Any:
    """`flow` (a nested pipeline called from a pipeline body) as it should run: on its parent's Dask client when
    the parent runs its tasks on Dask and the nested pipeline names no task runner of its own; else unchanged."""
    from prefect.context import FlowRunContext, TaskRunContext

    parent = FlowRunContext.get()
    if parent is None or TaskRunContext.get() is not None or getattr(flow, "names_task_runner", True) \
            or "prefect_dask" not in sys.modules:  # a Dask parent has loaded it
        return flow
    from prefect_dask import DaskTaskRunner

    if not isinstance(parent.task_runner, DaskTaskRunner):
        return flow
    from dbnd_prefect.engine.dask_runner import SharedDaskTaskRunner

    return with_task_runner(flow, SharedDaskTaskRunner(parent.task_runner))


__all__ = ["default_task_runner", "thread_task_runner", "task_runner_for", "environment_variables", "with_task_runner",
           "nested_flow"]
