"""Metrics and data profiles from inside a task, shown in the Prefect UI as artifacts.

Metrics logged in a task run are also recorded in its manifest under `metrics`. Both functions are
plain sync calls wherever they are made: in a task, in a notebook cell, or in a thread with a running
event loop (where Prefect's artifact functions would otherwise return a coroutine).
"""

from __future__ import annotations

import re
import threading
from typing import Any

_metrics: dict[Any, dict[str, Any]] = {}
_lock = threading.Lock()


def _artifact_key(name: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes only.
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "metric"


def _task_run_id() -> Any:
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    return ctx.task_run.id if ctx else None


def log_metric(key: str, value: Any) -> None:
    """Record a metric of the current task run: a Prefect table artifact and a manifest entry.

    Outside a task run (a notebook cell, a script) there is no manifest: only the artifact is made.
    """
    from prefect.artifacts import create_table_artifact

    run_id = _task_run_id()
    if run_id is not None:
        with _lock:
            _metrics.setdefault(run_id, {})[key] = value
    create_table_artifact(table=[{"metric": key, "value": value}], key=_artifact_key(f"metric-{key}"),
                          description=f"metric {key}", _sync=True)


def log_dataframe(name: str, frame: Any) -> dict[str, Any]:
    """Profile a DataFrame (rows, columns, dtypes, nulls, numeric summary) as a Prefect markdown artifact."""
    from prefect.artifacts import create_markdown_artifact

    profile = {
        "rows": int(len(frame)),
        "columns": {str(c): str(t) for c, t in frame.dtypes.items()},
        "nulls": {str(c): int(n) for c, n in frame.isna().sum().items()},
    }
    lines = [f"### {name}: {profile['rows']} rows", "", "| column | dtype | nulls |", "|---|---|---|"]
    lines += [f"| {c} | {t} | {profile['nulls'][c]} |" for c, t in profile["columns"].items()]
    numeric = frame.select_dtypes("number")
    if not numeric.empty:
        summary = numeric.describe().T[["mean", "std", "min", "max"]]
        lines += ["", "| column | mean | std | min | max |", "|---|---|---|---|---|"]
        lines += [f"| {c} | {r['mean']:.4g} | {r['std']:.4g} | {r['min']:.4g} | {r['max']:.4g} |"
                  for c, r in summary.iterrows()]
    create_markdown_artifact("\n".join(lines), key=_artifact_key(f"profile-{name}"), description=f"profile of {name}",
                             _sync=True)
    return profile


def take_metrics(task_run_id: Any) -> dict[str, Any]:
    """The metrics logged by a task run, removed from the buffer."""
    with _lock:
        return _metrics.pop(task_run_id, {})
