"""Every use of a Prefect name that is not public API, in one place, each with what it is for.

A Prefect upgrade that renames or removes one of these breaks this module only, and
`tests/test_architecture.py` says which name, in which Prefect version, and what dbnd uses it
for (`check_all`). Prefect is imported inside each function: importing this module imports nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, AsyncIterator, Callable


@dataclasses.dataclass(frozen=True)
class Usage:
    """One private Prefect name dbnd relies on."""

    name: str
    purpose: str
    present: Callable[[], bool]


def _has(module: str, attr: str) -> Callable[[], bool]:
    def check() -> bool:
        import importlib

        found: Any = importlib.import_module(module)
        for part in attr.split("."):
            if not hasattr(found, part):
                return False
            found = getattr(found, part)
        return True

    return check


def _sets_attribute(cls_path: str, attr: str) -> Callable[[], bool]:
    """True when `cls.__init__`'s source assigns `self.<attr>` (an instance attribute, not a class one)."""
    def check() -> bool:
        import importlib
        import inspect

        module, _, name = cls_path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return f"self.{attr}" in inspect.getsource(cls.__init__)

    return check


def _dispatch_knows_sync() -> bool:
    import inspect

    from prefect._internal.compatibility import async_dispatch

    return "_sync" in inspect.getsource(async_dispatch)


USAGES: tuple[Usage, ...] = (
    Usage("prefect._internal.concurrency.services.QueueService",
          "publish pipeline data flows (artifacts, lineage events) on Prefect's loop thread, drained at exit",
          _has("prefect._internal.concurrency.services", "QueueService")),
    Usage("QueueService._lifespan / _handle / _drain / _instances",
          "open one API client for the data-flow publisher, handle each queued pipeline run, wait for it",
          lambda: all(hasattr(_queue_service(), n) for n in ("_lifespan", "_handle", "_drain", "_instances"))),
    Usage("prefect.events.worker.EventsWorker._instances",
          "wait until Prefect's running events workers have sent what runs queued, without starting a new one",
          lambda: hasattr(_events_worker(), "_instances")),
    Usage("SyncClientContext._httpx_settings",
          "let Prefect's get_client(sync_client=True) reuse the one client a flow call makes (TLS context once)",
          _sets_attribute("prefect.context.SyncClientContext", "_httpx_settings")),
    Usage("prefect_dask.task_runners.PrefectDaskFuture._final_state",
          "fetch a Dask task run's final state from the cluster once, not on every wait",
          lambda: _optional_has("prefect_dask.task_runners", "PrefectDaskFuture", "_final_state")),
    Usage("TaskRunContext.persist_result (written)",
          "keep a task run failing on bad input from pickling its exception into the data root",
          lambda: "persist_result" in _task_run_context().model_fields),
    Usage("FlowRunContext.__var__ / TaskRunContext.__var__",
          "emit lineage events that name their own runs, not the run that started the events worker",
          lambda: hasattr(_task_run_context(), "__var__") and hasattr(_flow_run_context(), "__var__")),
    Usage("the _sync=True keyword of Prefect's sync/async dispatch",
          "load and save blocks and create artifacts synchronously, also in a thread with a running event loop",
          _dispatch_knows_sync),
    Usage("threading._register_atexit",
          "send a run's data flow before Prefect's own services drain at interpreter exit",
          _has("threading", "_register_atexit")),
)


def check_all() -> list[str]:
    """One message per private name that the installed Prefect no longer has (empty when all are there)."""
    import prefect

    problems = []
    for usage in USAGES:
        try:
            ok = usage.present()
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a missing name
            ok, usage = False, dataclasses.replace(usage, purpose=f"{usage.purpose} ({type(exc).__name__}: {exc})")
        if not ok:
            problems.append(f"Prefect {prefect.__version__} has no {usage.name}; dbnd_prefect uses it to "
                            f"{usage.purpose}")
    return problems


def _optional_has(module: str, cls: str, attr: str) -> bool:
    import importlib

    try:
        found = getattr(importlib.import_module(module), cls)
    except ImportError:
        return True  # prefect-dask is optional: nothing to check without it
    inits = [vars(klass).get("__init__") for klass in found.__mro__]  # set in one of the classes' __init__
    return hasattr(found, attr) or any(attr in init.__code__.co_names for init in inits if hasattr(init, "__code__"))


def _queue_service() -> type:
    from prefect._internal.concurrency.services import QueueService

    return QueueService


def _events_worker() -> type:
    from prefect.events.worker import EventsWorker

    return EventsWorker


def _task_run_context() -> type:
    from prefect.context import TaskRunContext

    return TaskRunContext


def _flow_run_context() -> type:
    from prefect.context import FlowRunContext

    return FlowRunContext


# ----- the uses ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def background_queue() -> type:
    """A Prefect QueueService (a queue served on Prefect's loop thread, drained at exit) with public hooks:
    subclasses override `lifespan()` (an async context manager around serving) and `handle(item)`."""
    base = _queue_service()

    class BackgroundQueue(base):  # type: ignore[misc, valid-type]
        @contextlib.asynccontextmanager
        async def _lifespan(self) -> AsyncIterator[None]:
            async with self.lifespan():
                yield

        async def _handle(self, item: Any) -> None:
            await self.handle(item)

        @contextlib.asynccontextmanager
        async def lifespan(self) -> AsyncIterator[None]:
            yield

        async def handle(self, item: Any) -> None:
            raise NotImplementedError

        @classmethod
        def running(cls) -> list[Any]:
            """The started instances of this class (one per argument set, e.g. per API URL)."""
            return [s for s in list(cls._instances.values()) if isinstance(s, cls)]

        def drained(self, timeout: float) -> None:
            """Wait until everything queued so far was handled (concurrent.futures.TimeoutError past `timeout`)."""
            self._drain().result(timeout)

    return BackgroundQueue


def running_events_workers() -> list[Any]:
    """Prefect's running events workers (`EventsWorker.instance()` would start a new one after a drain)."""
    worker = _events_worker()
    return [s for s in list(worker._instances.values()) if isinstance(s, worker)]


def client_context_as_default(context: Any) -> Any:
    """`context` (a SyncClientContext made with our TLS settings) marked as made with default settings, so
    Prefect hands its client to `get_client(sync_client=True)` inside the run instead of making another."""
    context._httpx_settings = None
    return context


def dask_final_state(future: Any) -> Any:
    """The final state a prefect-dask future has fetched already, or None."""
    return future._final_state


def stop_persisting_result(task_run_context: Any) -> None:
    """This attempt of the task run persists no result (read by Prefect's failure handling)."""
    task_run_context.persist_result = False


def without_run_contexts() -> None:
    """In the current context: no flow or task run in effect (explicitly, not just unset)."""
    from prefect.context import FlowRunContext, TaskRunContext

    TaskRunContext.__var__.set(None)
    FlowRunContext.__var__.set(None)


def sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a Prefect sync/async-dispatched function synchronously, also where an event loop runs (Jupyter)."""
    return fn(*args, _sync=True, **kwargs)


def register_exit_hook_before_prefect(hook: Callable[[], None]) -> None:
    """Run `hook` at interpreter exit before Prefect's services drain (threading's exit hooks run last
    registered first; registered after the run started them, this one runs before their drains)."""
    import threading

    threading._register_atexit(hook)  # type: ignore[attr-defined]


__all__ = ["USAGES", "check_all", "background_queue", "running_events_workers", "client_context_as_default",
           "dask_final_state", "stop_persisting_result", "without_run_contexts", "sync",
           "register_exit_hook_before_prefect"]
