"""Warnings from tracking calls: they explain what was not recorded, and never fail the user's code."""

from __future__ import annotations

import logging
import warnings

logger = logging.getLogger("dbnd_prefect")


class TrackingWarning(UserWarning):
    """A metric, profile or file that could not be recorded as asked (the run goes on)."""


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run (where artifacts can be attached to the run)."""
    from prefect.context import FlowRunContext, TaskRunContext

    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def warn(message: str) -> None:
    """Tell the user: in a Prefect run through its logger (shown in the UI and console), else as a warning."""
    if in_prefect_run():
        from prefect.logging import get_run_logger

        try:
            get_run_logger().warning(message)
            return
        except Exception:
            pass
    warnings.warn(message, TrackingWarning, stacklevel=3)
