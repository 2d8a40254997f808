"""Prefect's console output, reduced to what a dbnd user needs: no noise on success, one line on failure.

- `Failed to send telemetry` (and, on a busy SQLite database, its traceback): the server's analytics
  service posts a heartbeat to prefect.io; offline that fails with an ERROR. Servers this process
  starts (Prefect's temporary server) are opted out with Prefect's setting
  PREFECT_SERVER_ANALYTICS_ENABLED=false (`quiet_server_settings`).
- Tracebacks of bad input: Prefect logs a failing task run's exception with its traceback before
  any caller can catch it. For an input error (bad data found while loading a task's input) the
  traceback says nothing about the user's code, so it is left out (`hide_input_error_tracebacks`).
- `dbnd run` reports a failure itself in one line; `quiet_failure_reports` keeps Prefect's console
  from repeating it (Prefect's UI keeps the full report, `--verbose` prints it).
- `Still processing items` notes of Prefect's workers draining at exit (`quiet_drain_notes`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from dbnd_prefect.errors import is_input_error

SERVER_OPT_OUTS = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs")
_FAILURE_REPORTS = ("Task run failed with", "Encountered exception during execution", "Finished in state",
                    "Crash detected")
_FAILED_STATES = ("Finished in state Failed", "Finished in state Crashed")


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
