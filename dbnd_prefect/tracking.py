"""Metrics and data profiles from inside a task, shown in the Prefect UI as artifacts.

Metrics logged in a task run are also recorded in its manifest under `metrics`. Both functions are
plain sync calls wherever they are made: in a task, in a notebook cell, or in a thread with a running
event loop (where Prefect's artifact functions would otherwise return a coroutine).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Any, Iterator

# The metrics of the task body running in this context (None outside a task body).
_collected: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("dbnd_metrics", default=None)


def _artifact_key(name: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes only.
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "metric"


def log_metric(key: str, value: Any) -> None:
    """Record a metric of the current task run: a Prefect table artifact and a manifest entry.

    Outside a task run (a notebook cell, a script) there is no manifest: only the artifact is made.
    """
    from prefect.artifacts import create_table_artifact

    collected = _collected.get()
    if collected is not None:
        collected[key] = value
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


@contextlib.contextmanager
def collecting_metrics() -> Iterator[dict[str, Any]]:
    """The metrics that `log_metric` records while the block runs (a task body), by key."""
    collected: dict[str, Any] = {}
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)
