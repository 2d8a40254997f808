"""Metrics: `log_metric` / `log_metrics`, kept as a series per key and shown as Prefect table artifacts.

In a dbnd task body the series go into the task's manifest and are published when the body ends
(one table artifact per key, `metric-{key}`: step, value, time). In a plain Prefect flow or task
(a pipeline body) each call publishes the series so far. Outside any run the values are kept in
this process (`metrics_outside_runs()`) and a warning says so once.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import datetime as dt
import math
import numbers
import threading
from typing import Any, Iterator, Mapping

from dbnd_prefect.context import current_run
from dbnd_prefect.tracking.publish import artifact_key, publish_table
from dbnd_prefect.tracking.notices import in_prefect_run, warn, warn_once

_TEXT_LIMIT = 200
_ARTIFACT_ROWS = 1000  # the newest points shown in an artifact; the manifest keeps them all


class MetricLog:
    """Metric series by key: each point is {"step", "value", "logged_at"}."""

    def __init__(self) -> None:
        self.series: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def add(self, key: str, value: Any) -> list[dict[str, Any]]:
        """Append `value` to the series of `key`; returns that series."""
        with self._lock:
            points = self.series.setdefault(key, [])
            points.append({"step": len(points), "value": value,
                           "logged_at": dt.datetime.now(dt.timezone.utc).isoformat()})
            return points

    def last_values(self) -> dict[str, Any]:
        """The latest value of each key."""
        return {key: points[-1]["value"] for key, points in self.series.items()}

    def publish(self, keys: Any = None) -> None:
        """One table artifact per key (all keys, or `keys`) for the Prefect run in effect."""
        for key in self.series if keys is None else keys:
            points = self.series[key][-_ARTIFACT_ROWS:]
            publish_table(artifact_key("metric", key), [dict(p) for p in points],
                          description=f"metric **{key}**: {len(self.series[key])} value(s), latest {points[-1]['value']}")


_current: contextvars.ContextVar[MetricLog | None] = contextvars.ContextVar("dbnd_metric_log", default=None)
_outside = MetricLog()
# metric logs of plain Prefect tasks and flows outside any dbnd run, by Prefect run id (the newest few: a
# dbnd run keeps its own on the run, `RunContext.metric_logs`)
_plain_runs: collections.OrderedDict[str, MetricLog] = collections.OrderedDict()
_PLAIN_RUNS_KEPT = 64


def log_metric(key: str, value: Any) -> None:
    """Record `value` for metric `key` (a series when called again); never raises.

    Numbers are recorded as numbers; anything else is recorded as text with a warning.
    """
    try:
        _log(str(key), _metric_value(str(key), value))
    except Exception as exc:  # a tracking call must never fail the user's task
        warn(f"tracking: metric {key!r} was not recorded: {type(exc).__name__}: {exc}")


def log_metrics(metrics: Mapping[str, Any]) -> None:
    """`log_metric` for each key and value of `metrics`."""
    if not isinstance(metrics, Mapping):
        warn(f"tracking: log_metrics expects a dict of metric names to values, got {type(metrics).__name__}; "
             "nothing recorded")
        return
    for key, value in metrics.items():
        log_metric(key, value)


def metrics_outside_runs() -> dict[str, list[dict[str, Any]]]:
    """The metric series logged in this process outside any task or pipeline run, by key."""
    return {key: list(points) for key, points in _outside.series.items()}


@contextlib.contextmanager
def collecting_metrics(log: MetricLog | None = None) -> Iterator[dict[str, Any]]:
    """Collect the metrics logged while the block (a task body) runs; publish them as artifacts at its end.

    Yields a dict that holds, once the block has ended, the latest value of each metric.
    """
    log = log if log is not None else MetricLog()
    latest: dict[str, Any] = {}
    token = _current.set(log)
    try:
        yield latest
    finally:
        _current.reset(token)
        latest.update(log.last_values())
        if log.series:
            log.publish()


def _metric_value(key: str, value: Any) -> Any:
    """`value` as recorded: an int or float, or (with a warning) text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (numbers.Real, numbers.Number)) or (hasattr(value, "__float__") and not isinstance(value, str)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and math.isfinite(number):
            return number
        if number is not None:
            warn(f"tracking: metric {key!r} = {number} is not a finite number; recorded as text")
            return str(number)
    text = str(value)
    if len(text) > _TEXT_LIMIT:
        text = text[:_TEXT_LIMIT - 3] + "..."
    warn(f"tracking: metric {key!r} = {text!r} ({type(value).__name__}) is not a number; recorded as text "
         "(log numbers to compare runs)")
    return text


def _log(key: str, value: Any) -> None:
    log = _current.get()
    if log is not None:
        log.add(key, value)
        return
    run_id = _prefect_run_id()
    if run_id is not None:
        log = _log_of_prefect_run(run_id)
        log.add(key, value)
        log.publish([key])
        return
    _outside.add(key, value)
    warn_once("metric outside a run",
              f"tracking: log_metric({key!r}) outside a task or pipeline run: the value is kept in this process "
              "(dbnd_prefect.tracking.metrics_outside_runs()), not sent to Prefect; log metrics inside a task")


def _log_of_prefect_run(run_id: str) -> MetricLog:
    """The metric log of a pipeline body or plain Prefect task run: kept on the dbnd run in effect, if any."""
    run = current_run()
    logs = run.metric_logs if run is not None else _plain_runs
    log = logs.get(run_id)
    if log is None:
        log = logs[run_id] = MetricLog()
        if run is None and len(_plain_runs) > _PLAIN_RUNS_KEPT:
            _plain_runs.popitem(last=False)
    return log


def _prefect_run_id() -> str | None:
    if not in_prefect_run():
        return None
    from prefect.context import FlowRunContext, TaskRunContext

    task_ctx = TaskRunContext.get()
    if task_ctx is not None:
        return str(task_ctx.task_run.id)
    flow_ctx = FlowRunContext.get()
    return str(flow_ctx.flow_run.id) if flow_ctx is not None and flow_ctx.flow_run is not None else None
