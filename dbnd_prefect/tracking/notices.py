"""Warnings from tracking calls: they explain what was not recorded, and never fail the user's code."""

from __future__ import annotations

import logging
import os
import sys
import warnings

logger = logging.getLogger("dbnd_prefect")


class TrackingWarning(UserWarning):
    """A metric, profile or file that could not be recorded as asked (the run goes on)."""


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run (where artifacts can be attached to the run)."""
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


_warned: set[str] = set()


def warn_once(topic: str, message: str) -> None:
    """`warn(message)` the first time `topic` comes up in this process."""
    if topic not in _warned:
        _warned.add(topic)
        warn(message)


def silence(topic: str) -> None:
    """Never warn about `topic` in this process (a process whose caller reports it)."""
    _warned.add(topic)


def warn(message: str) -> None:
    """Tell the user: in a Prefect run through its logger (shown in the UI and console), else as a warning."""
    if in_prefect_run():
        from prefect.logging import get_run_logger

        try:
            get_run_logger().warning(message)
            return
        except Exception:
            pass
    warnings.warn(message, TrackingWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The `stacklevel` of the first frame outside this package: the user's line that made the call."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1  # frame 1 is warn(): stacklevel 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(here):
        frame, level = frame.f_back, level + 1
    return level
