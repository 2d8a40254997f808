"""Prefect's console output, reduced to what a dbnd user needs: no noise on success, one line on failure.

What Prefect prints that is not about the user's run, and why:
- `Failed to send telemetry` (and, on a busy SQLite database, its traceback): the server's analytics
  service posts a heartbeat to prefect.io; offline that fails with an ERROR. Servers this process
  starts (Prefect's temporary server) are opted out with Prefect's setting
  PREFECT_SERVER_ANALYTICS_ENABLED=false (`quiet_server_settings`).
- `EventsWorker - Still processing items` at exit: Prefect sends the client's events (task run
  states) from a queue, and warns when the queue is not empty when it is drained at exit. A run does
  not wait for the queue (raw Prefect does not either); `finish_run` registers, once, an exit step that
  runs before Prefect's drains and sends the run's data flow and events first (`send_queued_at_exit`).
- `task_run_recorder ... CancelledError` tracebacks at exit: the temporary server records task runs
  from those events, and Prefect stops it (at exit) while it is still writing the last ones.
  `finish_run` makes the process wait at exit, before Prefect stops its temporary server, until
  the server has recorded the run's task runs.
- Tracebacks of bad input: Prefect logs a failing task run's exception with its traceback before
  any caller can catch it. For an input error (bad data found while loading a task's input) the
  traceback says nothing about the user's code, so it is left out (`hide_input_error_tracebacks`).
- `dbnd run` reports a failure itself in one line; `quiet_failure_reports` keeps Prefect's console
  from repeating it (Prefect's UI keeps the full report, `--verbose` prints it).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, Iterator

from dbnd_prefect.errors import is_input_error

SERVER_OPT_OUTS = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
_FAILURE_REPORTS = ("Task run failed with", "Encountered exception during execution", "Finished in state",
                    "Crash detected")
_FAILED_STATES = ("Finished in state Failed", "Finished in state Crashed")
QUEUE_TIMEOUT = 30.0
SETTLE_TIMEOUT = 10.0
_READ_LIMIT = 200  # Prefect's API returns at most this many task runs per request


def quiet_server_settings() -> None:
    """Opt the Prefect servers this process starts (Prefect's temporary server) out of analytics.

    Call before the temporary server starts: it inherits this process's environment. A value the
    user set keeps winning.
    """
    for name, value in SERVER_OPT_OUTS.items():
        os.environ.setdefault(name, value)


class _InputErrorTracebacks(logging.Filter):
    """Drops the traceback from Prefect's run-log records about an input error (keeps the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        if exc is not None and is_input_error(exc):
            record.exc_info = None
            record.exc_text = None
        return True


_input_filter = _InputErrorTracebacks()


def hide_input_error_tracebacks() -> None:
    """Have Prefect log an input error of a task or flow run as its one-line message, without traceback.

    Applies to every handler (console and Prefect's API logs); idempotent.
    """
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _input_filter not in logger.filters:
            logger.addFilter(_input_filter)


class _FailureReports(logging.Filter):
    """Drops Prefect's console reports of a failed task or flow run (dbnd reports the failure itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(RUN_LOGGERS):
            return True
        message = str(record.msg)
        if record.levelno >= logging.ERROR and message.startswith(_FAILURE_REPORTS):
            return False
        return not message.startswith(_FAILED_STATES)


@contextlib.contextmanager
def quiet_failure_reports() -> Iterator[None]:
    """While active, Prefect's console handlers do not print its reports of failed runs.

    They still reach Prefect's API (the UI shows them). Prefect must be imported (its logging set up).
    """
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    report_filter = _FailureReports()
    for handler in handlers:
        handler.addFilter(report_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(report_filter)


_unsettled: dict[str, str] = {}  # task run id -> the state the client ended it in
_settle_registered = False
_send_registered = False
_lock = threading.Lock()


class _NoDrainNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Still processing items")


def quiet_drain_notes() -> None:
    """Prefect's events and log workers note each wait while they drain at exit ("Still processing items:
    N items remaining..."): a normal end of a `dbnd` process, kept off its console."""
    for name in ("EventsWorker", "APILogWorker", "ArtifactWorker"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _NoDrainNotes) for f in log.filters):
            log.addFilter(_NoDrainNotes())


def finish_run(run: Any) -> None:
    """Call when a top-level run (`RunContext`) has ended, failed or not.

    Does not wait for Prefect's events: like Prefect's own, they are sent in the background, and what
    is still queued when the process exits is sent then (`send_queued_at_exit`). On Prefect's
    temporary server, also makes the process wait at exit, before Prefect stops that server, until
    the server has recorded the run's task runs. Cheap; never raises.
    """
    global _settle_registered
    if "prefect" not in sys.modules or getattr(run, "flow_run_id", None) is None:
        return  # no flow ran (a plan, a failed check): nothing was sent, and asking would start a server
    try:
        _register_send_at_exit()
        if not _on_temporary_server():
            return
        with _lock:
            for entry in getattr(run, "task_runs", []):
                if entry.get("task_run_id") and entry.get("state"):
                    _unsettled[str(entry["task_run_id"])] = str(entry["state"])
            if not _settle_registered:
                # registered after Prefect registered its server's stop, so it runs before that
                atexit.register(_settle_server)
                _settle_registered = True
    except Exception:  # output hygiene must never fail a run
        pass


def _register_send_at_exit() -> None:
    global _send_registered
    with _lock:
        if _send_registered:
            return
        # Prefect drains its services in threading's exit hooks, last registered first: registered after
        # the run started them, this one runs before their drains, which then find nothing to note.
        threading._register_atexit(send_queued_at_exit)  # type: ignore[attr-defined]
        _send_registered = True


def send_queued_at_exit(timeout: float = QUEUE_TIMEOUT) -> None:
    """Send what runs left queued: their data flow (artifacts, lineage events), then Prefect's events."""
    try:
        if "dbnd_prefect.prefect_ui.data_flow" in sys.modules:
            from dbnd_prefect.prefect_ui.data_flow import wait_until_published

            wait_until_published(timeout)
        wait_for_events(timeout)
    except Exception:  # at exit: best effort, Prefect's own drain follows
        pass


def wait_for_events(timeout: float = QUEUE_TIMEOUT) -> None:
    """Wait (bounded) until Prefect's events worker has sent everything queued, without stopping it."""
    if "prefect.events.worker" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker

    # the running workers only: `EventsWorker.instance()` would start a new one after a drain
    for worker in [s for s in list(EventsWorker._instances.values()) if isinstance(s, EventsWorker)]:
        waiter = threading.Thread(target=worker.wait_until_empty, daemon=True, name="dbnd-wait-for-events")
        waiter.start()
        waiter.join(timeout)


def _on_temporary_server() -> bool:
    """True when this process talks to Prefect's temporary server (no API URL configured)."""
    if "prefect.server.api.server" not in sys.modules:
        return False
    from prefect.settings import get_current_settings

    return not get_current_settings().api.url


def _settle_server(timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait (bounded) until the temporary server has recorded each task run in its final state."""
    with _lock:
        expected = dict(_unsettled)
        _unsettled.clear()
    if not expected:
        return
    try:
        import uuid

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId

        ids = list(expected)
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while ids and time.monotonic() < deadline:
                chunk = ids[:_READ_LIMIT]
                found = client.read_task_runs(
                    task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[uuid.UUID(i) for i in chunk])),
                    limit=_READ_LIMIT)
                recorded = {str(r.id): r.state.name for r in found if r.state is not None}
                pending = [i for i in chunk if recorded.get(i) != expected[i]]
                ids = pending + ids[_READ_LIMIT:]
                if pending:
                    time.sleep(0.1)
    except Exception:  # at exit: the server is about to stop anyway
        pass
