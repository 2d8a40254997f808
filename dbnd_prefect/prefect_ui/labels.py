"""What the Prefect task-run page says about a dbnd task run: Version, Tags and Cache Key.

Prefect takes a task run's version and tags from the `prefect.Task`, which is shared by every call of a
dbnd task, while the signature differs per call. So they are set on the task run itself, from the call's
signature, when Prefect asks the cache policy for the key (versioning/policy.py): that happens for every
versioned task run, reused or not, before its final state is recorded, and the final state event carries
the task run's fields to the server. Tags added there also stay out of Prefect's tag concurrency checks,
which ran already (a tag set at submission would cost a concurrency-limit request per task run).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("dbnd_prefect")

SIGNATURE_SHOWN = 12


def version_label(signature: Any) -> str:
    """The task run's Version: task version (if any), env and short signature, e.g. `v2 · prod · 3fa2c1d9e0b1`."""
    parts = [f"v{signature.task_version}"] if signature.task_version else []
    return " · ".join(parts + [signature.env, signature.digest[:SIGNATURE_SHOWN]])


def tags_for(signature: Any) -> list[str]:
    """The task run's dbnd tags: `dbnd`, `env:<env>`, `signature:<short>` and `task_version:<v>` when set."""
    tags = ["dbnd", f"env:{signature.env}", f"signature:{signature.digest[:SIGNATURE_SHOWN]}"]
    if signature.task_version:
        tags.append(f"task_version:{signature.task_version}")
    return tags


def label_task_run(task_run: Any, call: Any, cache_key: str) -> None:
    """Set the Version, Tags and Cache Key Prefect records for `task_run`, a run of the bound `call`."""
    if task_run is None:
        return
    try:
        signature = call.signature
        task_run.task_version = version_label(signature)
        task_run.tags = sorted(set(task_run.tags or ()) | set(tags_for(signature)))
        task_run.cache_key = cache_key
    except Exception as exc:  # labels are for show: never let them cost the run its cache key
        logger.debug("task run labels not set: %s", exc)
