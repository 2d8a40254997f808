"""Lineage as Prefect events, queryable through the API (`/events/filter`).

One event per output, each one the server stores and digests (~1.5 ms of its CPU on a 2-core machine):

- an output a task run wrote is a Prefect asset materialization (`prefect.asset.materialization.succeeded`, the
  event Prefect's own `@materialize` emits, so a Prefect Cloud workspace draws the lineage graph): resource the
  output's URI as asset key, with dbnd's labels (`dbnd.task`, `dbnd.output`, `dbnd.signature`, `dbnd.format`,
  `dbnd.rows`, ...); related: its upstream assets (role `asset`), the inputs it read (role `input`), the task
  run and the flow run; payload: format, bytes, rows, checksum, signature. An output whose URI is no valid asset
  key (spaces, '%', user info, ...) is a `dbnd.output.written` event of the same shape instead.
- an output a task run reused is a `dbnd.output.reused` event, related to the flow run that made it.

Prefect's events worker sends them in the background, in batches.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from dbnd_prefect.prefect_ui.task_io import DataRef, TaskRunIO

from dbnd_prefect import prefect_internals
from dbnd_prefect.prefect_ui.task_io import browse_url

logger = logging.getLogger("dbnd_prefect")

WRITTEN = "dbnd.output.written"
REUSED = "dbnd.output.reused"
MATERIALIZED = "prefect.asset.materialization.succeeded"
MATERIALIZED_BY = "dbnd-prefect"
_MAX_RELATED = 60  # the server refuses events with more related resources than its limit (100 by default)


def resource_uri(uri: str) -> str:
    """The URI an event names a stored file by: redacted, local paths as file:// URIs."""
    import os

    from dbnd_prefect.redaction import redact

    text = redact(uri)
    return text if "://" in text else "file://" + os.path.abspath(text)


def asset_key(uri: str | None) -> str | None:
    """The Prefect asset key of a stored file (`resource_uri`), or None when that is not a valid asset key
    (spaces, '%', '#', ... or longer than 512 characters)."""
    from prefect.types.names import validate_valid_asset_key

    if not uri:
        return None
    text = resource_uri(uri)
    if "@" in text.split("://", 1)[1].split("/", 1)[0]:
        return None  # user info in the authority: never an asset key
    try:
        return validate_valid_asset_key(text)
    except ValueError:
        return None


def _labels(ref: "DataRef", io: "TaskRunIO") -> dict[str, str]:
    labels = {"dbnd.task": io.task, "dbnd.output": ref.name, "dbnd.signature": io.signature or "",
              "dbnd.format": ref.format or "", "dbnd.env": io.env or ""}
    if ref.bytes is not None:
        labels["dbnd.bytes"] = str(ref.bytes)
    if ref.rows is not None:
        labels["dbnd.rows"] = str(ref.rows)
    if ref.checksum:
        labels["dbnd.checksum"] = ref.checksum
    return labels


def _run_related(io: "TaskRunIO", flow_run_id: str) -> list[dict[str, str]]:
    related = [{"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}]
    if io.task_run_id:
        related.append({"prefect.resource.id": f"prefect.task-run.{io.task_run_id}",
                        "prefect.resource.role": "task-run", "prefect.resource.name": io.task})
    return related


def _occurred(io: "TaskRunIO") -> Any:
    import datetime as dt

    if io.made_at and not io.reused:
        try:
            return dt.datetime.fromisoformat(io.made_at)
        except ValueError:
            pass
    return None


def events_for(io: "TaskRunIO", flow_run_id: str) -> list[dict[str, Any]]:
    """The events (keyword arguments of `prefect.events.emit_event`) that record one task run's lineage."""
    if not io.outputs or io.state not in ("Completed", "Cached"):
        return []
    events: list[dict[str, Any]] = []
    run_related = _run_related(io, flow_run_id)
    if io.reused:
        made_by = ([{"prefect.resource.id": f"prefect.flow-run.{io.made_by_flow_run}",
                     "prefect.resource.role": "made-by-flow-run"}] if io.made_by_flow_run else [])
        for ref in io.outputs:
            if ref.uri:
                events.append(dict(event=REUSED, resource={"prefect.resource.id": resource_uri(ref.uri),
                                                           "prefect.resource.name": f"{io.task}.{ref.name}",
                                                           **_labels(ref, io)},
                                   related=run_related + made_by))
        return events
    inputs = [{"prefect.resource.id": resource_uri(ref.uri), "prefect.resource.role": "input",
               "prefect.resource.name": ref.name} for ref in io.inputs if ref.uri]
    upstream = sorted({key for key in (asset_key(ref.uri) for ref in io.inputs) if key})
    upstream_related = [{"prefect.resource.id": key, "prefect.resource.role": "asset"} for key in upstream]
    occurred = _occurred(io)
    for ref in io.outputs:
        if not ref.uri:
            continue
        resource = {"prefect.resource.id": resource_uri(ref.uri), "prefect.resource.name": f"{io.task}.{ref.name}",
                    **_labels(ref, io)}
        key = asset_key(ref.uri)
        if key is None:  # not an asset: dbnd's own event
            events.append(dict(event=WRITTEN, resource=resource, related=(run_related + inputs)[:_MAX_RELATED],
                               occurred=occurred))
            continue
        resource["prefect.resource.id"] = key
        url = browse_url(ref.uri)
        if url and url.startswith(("http://", "https://")):
            resource["prefect.asset.url"] = url
        related = upstream_related + [{"prefect.resource.id": MATERIALIZED_BY,
                                       "prefect.resource.role": "asset-materialized-by"}] + run_related + inputs
        payload = {k: v for k, v in {"format": ref.format, "bytes": ref.bytes, "rows": ref.rows,
                                     "checksum": ref.checksum, "signature": io.signature}.items() if v is not None}
        events.append(dict(event=MATERIALIZED, resource=resource, related=related[:_MAX_RELATED],
                           payload=payload, occurred=occurred))
    return events


def emit_lineage(flows: Sequence["TaskRunIO"], flow_run_id: str) -> int:
    """Emit the lineage events of a pipeline run's task runs; how many were queued."""
    import contextvars

    return contextvars.copy_context().run(_emit_all, flows, flow_run_id)


def _emit_all(flows: Sequence["TaskRunIO"], flow_run_id: str) -> int:
    from prefect.events import emit_event

    # Prefect's events worker adds the flow and task run of the sender's context to each event, and where
    # the sender's context never set them, those of the run that started the worker: these events name
    # their own runs, so the sender's context says "no run" explicitly.
    prefect_internals.without_run_contexts()
    count = 0
    for io in flows:
        for kwargs in events_for(io, flow_run_id):
            if kwargs.get("occurred") is None:
                kwargs.pop("occurred", None)
            try:
                sent = emit_event(**kwargs)
            except RuntimeError:  # the events worker stopped (a drain, the interpreter's exit): a new one takes it
                sent = emit_event(**kwargs)
            if sent is not None:
                count += 1
    return count
