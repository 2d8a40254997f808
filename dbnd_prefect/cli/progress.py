"""The live progress of a `dbnd run` on a terminal: task runs done, running, reused and failed.

Shown on stderr only when it is a terminal, and cleared when the run ends (the summary follows on
stdout); without a terminal (tests, CI, pipes) nothing is shown and nothing is tracked. The task
runs come from `engine.scope.observe_submissions`; their states are read from the Prefect futures.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import sys
import threading
import time
from typing import Any, Iterator

from dbnd_prefect.cli.output import is_terminal

REFRESH_PER_SECOND = 4
SHOWN_RUNNING = 3  # names of running tasks shown after the counts


class RunProgress:
    """The task runs submitted so far, counted by what their Prefect futures say now."""

    def __init__(self) -> None:
        self._submitted: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._spinner: Any = None

    def submitted(self, task_name: str, future: Any) -> None:
        with self._lock:
            self._submitted.append((task_name, future))

    def counts(self) -> tuple[dict[str, int], list[str]]:
        """({done, running, reused, failed, waiting: count}, names of running tasks)."""
        with self._lock:
            submitted = list(self._submitted)
        counts = dict.fromkeys(("done", "running", "reused", "failed", "waiting"), 0)
        running: list[str] = []
        for name, future in submitted:
            kind = _kind(future)
            counts[kind] += 1
            if kind == "running":
                running.append(name)
        return counts, running

    def line(self) -> str:
        counts, running = self.counts()
        shown = ", ".join(f"{counts[k]} {k}" for k in ("done", "running", "reused", "failed", "waiting")
                          if counts[k] or k in ("done", "running", "reused"))
        names = ", ".join(running[:SHOWN_RUNNING]) + (", ..." if len(running) > SHOWN_RUNNING else "")
        elapsed = time.monotonic() - self._started
        return f"{sum(counts.values())} task run(s): {shown} ({elapsed:.0f} s)" + (f"  running: {names}" if names
                                                                                  else "")

    def __rich__(self) -> Any:
        from rich.spinner import Spinner

        if self._spinner is None:
            self._spinner = Spinner("dots", text=self.line())
        else:
            self._spinner.update(text=self.line())
        return self._spinner


def _kind(future: Any) -> str:
    """done / reused / failed / running / waiting, from a Prefect future without asking the API."""
    wrapped = getattr(future, "wrapped_future", None)
    if not isinstance(wrapped, concurrent.futures.Future):
        return "running"  # another task runner's future: its state would cost an API call
    if not wrapped.done():
        return "running" if wrapped.running() else "waiting"
    if wrapped.cancelled() or wrapped.exception() is not None:
        return "failed"
    state = wrapped.result()
    name = getattr(state, "name", "")
    if name == "Cached":
        return "reused"
    return "done" if getattr(state, "is_completed", lambda: False)() else "failed"


@contextlib.contextmanager
def progress_display() -> Iterator[RunProgress | None]:
    """Show the live progress of the task runs submitted inside the block, on a terminal's stderr."""
    if not is_terminal(sys.stderr):
        yield None
        return
    from rich.console import Console
    from rich.live import Live

    from dbnd_prefect.engine.scope import observe_submissions

    progress = RunProgress()
    with Live(progress, console=Console(stderr=True), refresh_per_second=REFRESH_PER_SECOND, transient=True), \
            _prefect_logs_above(), observe_submissions(progress.submitted):
        yield progress


@contextlib.contextmanager
def _prefect_logs_above() -> Iterator[None]:
    """Prefect's console log lines go through the live display's stderr (printed above it) instead of
    straight to the terminal, where they would be written into the display's line."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    handlers = {id(h): h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)}
    saved = [(handler, handler.console.file) for handler in handlers.values()]
    through = _Through(sys.stderr)  # the live display's proxy while it runs
    for handler, _ in saved:
        handler.console.file = through
    try:
        yield
    finally:
        for handler, file in saved:
            handler.console.file = file


class _Through(io.TextIOBase):
    """Writes to the live display's stderr proxy. A rich console would write past the proxy itself (it
    unwraps it), to the terminal under the display."""

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    def write(self, text: str) -> int:
        return self._proxy.write(text)

    def flush(self) -> None:
        self._proxy.flush()

    def isatty(self) -> bool:
        return True  # the proxy is in front of a terminal: keep Prefect's colours
