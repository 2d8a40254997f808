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
- A script's or notebook's failing call: Prefect's console reports the failure once
  (`quiet_repeated_reports`), and the one error the caller gets is shown from the caller's own line
  (`at_caller`). After an interrupt Prefect's console is quiet (`quiet_after_interrupt`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from types import TracebackType
from typing import Any, Callable, Iterator

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


class _RepeatedReports(logging.Filter):
    """Keeps one console report of a failure in a script's or notebook's call: the failing task run's own
    line ("Task run failed with ..."); its state line and the flow run's repeats of it go."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(RUN_LOGGERS):
            return True
        message = str(record.msg)
        if message.startswith(_FAILED_STATES) or message.startswith("Crash detected"):
            return False
        return not (record.name.startswith("prefect.flow_runs") and record.levelno >= logging.ERROR
                    and message.startswith("Encountered exception during execution"))


class _AfterInterrupt(logging.Filter):
    """Once the run is interrupted, Prefect's console says nothing more (the caller reports it in one line)."""

    def __init__(self, interrupted: Callable[[], bool]) -> None:
        super().__init__()
        self.interrupted = interrupted

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("prefect") and self.interrupted())


@contextlib.contextmanager
def _on_console(*filters: logging.Filter) -> Iterator[None]:
    """`filters` on Prefect's console handlers for the block (its API handler, hence the UI, keeps everything)."""
    if "prefect.logging.handlers" not in sys.modules:
        import prefect.logging.handlers  # noqa: F401 - sets Prefect's logging up: its handlers exist after

    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    for handler in handlers:
        for item in filters:
            handler.addFilter(item)
    try:
        yield
    finally:
        for handler in handlers:
            for item in filters:
                handler.removeFilter(item)


def quiet_repeated_reports() -> Any:
    """For a script's or notebook's top-level call: Prefect's console reports a failure at most once."""
    return _on_console(_RepeatedReports())


def quiet_after_interrupt(interrupted: Callable[[], bool]) -> Any:
    """Prefect's console quiet once `interrupted()` is true (Crash detected, Finished in state Crashed...)."""
    return _on_console(_AfterInterrupt(interrupted))


# --- A script's or notebook's failing call: the error, from the caller's line ------------------------------------

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_hook_installed = False


def at_caller(error: BaseException) -> BaseException:
    """`error`, to be raised `from None` at the edge of a top-level call, shown from the caller's own line.

    Its traceback is dropped (the frames inside dbnd and Prefect say nothing about the caller's code) and
    it is marked, so that the traceback Python prints for it ends at the caller's line: frames inside this
    package are left out by `sys.excepthook` (installed once, delegating to the one before); IPython and
    pytest leave out frames that set `__tracebackhide__`.
    """
    _install_excepthook()
    error.__dbnd_at_caller__ = True  # type: ignore[attr-defined]
    return error.with_traceback(None)


def _install_excepthook() -> None:
    global _hook_installed
    if _hook_installed:
        return
    previous = sys.excepthook

    def dbnd_excepthook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if getattr(error, "__dbnd_at_caller__", False):
            tb = until_package(tb)
            error.__traceback__ = tb  # what Python's own hook prints
        previous(kind, error, tb)
        code = getattr(error, "exit_code", None)
        if isinstance(error, KeyboardInterrupt) and isinstance(code, int):
            # an interrupted run (its flow run cancelled): a task body may still run in a thread that Python
            # would wait for at exit; the process ends now, with the signal's exit code (130, 143)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    sys.excepthook = dbnd_excepthook
    _hook_installed = True


def until_package(tb: TracebackType | None) -> TracebackType | None:
    """`tb` up to the first frame inside this package (the caller's call into it is the last frame)."""
    entries = []
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
            break
        entries.append(tb)
        tb = tb.tb_next
    if not entries:
        return tb
    rebuilt = None
    for entry in reversed(entries):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt
