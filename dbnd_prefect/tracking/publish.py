"""Prefect artifacts made by tracking calls: stable keys, sync creation anywhere, failures as warnings.

A key depends only on what is tracked (a metric name, a task and parameter), never on the run, so
Prefect's per-key history in the UI compares runs. Artifacts are attached to the Prefect flow or
task run in effect; outside one nothing is sent (Prefect deprecates run-less artifacts).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from dbnd_prefect import prefect_internals
from dbnd_prefect.tracking.notices import in_prefect_run, warn, warn_once

_KEY_LIMIT = 100


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) made of `parts`; long keys end in a hash."""
    text = "-".join(str(p) for p in parts)
    key = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "artifact"
    if len(key) > _KEY_LIMIT:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        key = f"{key[:_KEY_LIMIT - 9].rstrip('-')}-{digest}"
    return key


def publish_table(key: str, rows: list[dict[str, Any]], description: str) -> bool:
    """A table artifact under `key` for the run in effect; False (with a warning) when none was made."""
    from prefect.artifacts import create_table_artifact

    return _publish(lambda: prefect_internals.sync(create_table_artifact, table=rows, key=key, description=description), key)


def publish_markdown(key: str, markdown: str, description: str) -> bool:
    """A markdown artifact under `key` for the run in effect; False (with a warning) when none was made."""
    from prefect.artifacts import create_markdown_artifact

    return _publish(lambda: prefect_internals.sync(create_markdown_artifact, markdown, key=key, description=description), key)


def publish_link(key: str, link: str, text: str, description: str) -> bool:
    """A link artifact under `key` for the run in effect; False (with a warning) when none was made."""
    from prefect.artifacts import create_link_artifact

    return _publish(lambda: prefect_internals.sync(create_link_artifact, link, link_text=text, key=key,
                                                        description=description), key)


def _publish(create: Any, key: str) -> bool:
    if not in_prefect_run():
        warn_once("artifact outside a run", f"tracking: '{key}' is logged outside a task or pipeline run: it is "
                  "returned (log_dataframe) or stored (log_artifact) but not shown in Prefect; log it inside a task")
        return False
    try:
        create()
    except Exception as exc:  # the API being unreachable must not fail the user's task
        from dbnd_prefect.redaction import redact

        warn(f"tracking: could not create the Prefect artifact '{key}': {redact(f'{type(exc).__name__}: {exc}')}")
        return False
    return True
