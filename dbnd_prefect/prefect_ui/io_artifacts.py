"""The artifacts a user reads in the Prefect UI about a pipeline run's data.

Per pipeline run, `dbnd-<pipeline>-data-flow`: every task run, which URI and version it read (and whose output
that was) and wrote (format, rows, size, checksum), its signature and task version, and for a reused version
which run made it. Per task run, `dbnd-<task>-io`, only where it adds something to that table: a task run that
logged metrics, did not complete, or reused a stored version (each artifact is one request the server digests:
~15 ms of its CPU; data profiles have their own artifact, `profiles-<task>`). Keys are stable across runs, so Prefect's per-key
history compares runs.

Prefect's UI shows a table cell on one line (`<br>` breaks it) in a column ~700 px wide at a 1280 px window,
so tables keep to a few columns and show a long URI shortened (`short_uri`), linked to where it is stored
(its full URI as the link's title); under the table a list gives each shortened URI in full.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from dbnd_prefect.prefect_ui.task_io import DataRef, TaskRunIO

from dbnd_prefect.prefect_ui.task_io import browse_url

logger = logging.getLogger("dbnd_prefect")

SHORT = 12  # characters of a signature or checksum shown in tables
URI_SHOWN = 40  # characters of a URI shown in a table: ~290 px of the UI's ~700 px wide artifact column
ELLIPSIS = "…"


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) made of `parts`."""
    text = "-".join(parts)
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")


def task_io_key(task: str) -> str:
    return artifact_key("dbnd", task, "io")


def data_flow_key(pipeline: str) -> str:
    return artifact_key("dbnd", pipeline, "data-flow")


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _short(value: str | None) -> str:
    return f"`{value[:SHORT]}`" if value else "–"


def _middle(text: str, limit: int) -> str:
    """`text` cut to `limit` characters by an ellipsis in its middle."""
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 2)
    return text[:keep - keep // 2] + ELLIPSIS + text[len(text) - keep // 2:]


def short_uri(uri: str, limit: int = URI_SHOWN) -> str:
    """`uri` in at most about `limit` characters: whole when it fits, else where it is stored (scheme and bucket,
    or a local path's first folder), an ellipsis, and as many of its last path parts as fit; a file name or
    bucket too long for that is itself cut in the middle.

    `s3://bucket/data/prod/2025-01-02/train/train_3fa2c1d9e0b1c2d3/result.parquet` is shown as
    `s3://bucket/…/result.parquet`; `/home/me/project/data/.../result.parquet` as `/home/…/result.parquet`.
    """
    if len(uri) <= limit:
        return uri
    sep = "\\" if "\\" in uri and "/" not in uri else "/"  # a Windows path keeps its backslashes
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        authority, _, path = rest.partition("/")
        head, parts = f"{scheme}://{authority}", path.split("/")
    else:
        parts = uri.split(sep)
        if not parts[0] and len(parts) > 1:  # "/home/me/..." starts with ["", "home", ...]
            head, parts = sep + parts[1], parts[2:]
        else:
            head, parts = parts[0], parts[1:]
    parts = [p for p in parts if p]
    if not parts:
        return _middle(uri, limit)
    name, query, _ = parts[-1].partition("?")  # a query (a redacted token, say) is left out
    last = _middle(name, max(limit // 2, limit - len(head) - 3)) + (f"?{ELLIPSIS}" if query else "")
    head = _middle(head, max(limit - 3 - len(last), 12))
    room = limit - len(head) - 3 - len(last)  # for more of the last parts: head + "/…/" + parts + last
    tail = [last]
    for part in reversed(parts[:-1]):
        if len(part) + 1 > room:
            break
        tail.insert(0, part)
        room -= len(part) + 1
    return sep.join([head, *([ELLIPSIS] if len(tail) < len(parts) else []), *tail])


def _target(uri: str) -> str:
    """Where a link to a stored file points: where a browser opens it, else the (redacted) URI itself."""
    import urllib.parse

    from dbnd_prefect.redaction import redact

    text = redact(uri)
    url = redact(browse_url(text) or urllib.parse.quote(text, safe=":/?#[]@!$&'*+,;=%~"))
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("|", "%7C")


def _link(uri: str | None) -> str:
    """A stored file in a table: its URI shortened (`short_uri`) as a link, its full URI as the link's title."""
    from dbnd_prefect.redaction import redact

    if not uri:
        return "–"
    full = redact(uri)
    shown = short_uri(full)
    if shown == full:
        return f"[{_cell(full)}]({_target(uri)})"
    title = full.replace("\\", "\\\\").replace('"', '\\"').replace("|", "\\|")
    return f'[{_cell(shown)}]({_target(uri)} "{title}")'


def _full_link(uri: str) -> str:
    """A stored file outside a table: its whole URI as a link (the UI wraps it)."""
    from dbnd_prefect.redaction import redact

    return f"[{redact(uri)}]({_target(uri)})"


def _full_uris(refs: Sequence[tuple[str, str | None]]) -> list[str]:
    """The markdown list, under a table, of the URIs the table shows shortened: (what it is, URI) pairs."""
    from dbnd_prefect.redaction import redact

    seen: set[str] = set()
    lines = []
    for label, uri in refs:
        if uri and uri not in seen and short_uri(redact(uri)) != redact(uri):
            seen.add(uri)
            lines.append(f"- {label}: {_full_link(uri)}")
    return ["**Full URIs**", "", *lines, ""] if lines else []


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _run_name(run_id: str | None, names: dict[str, str]) -> str:
    if not run_id:
        return "an earlier run"
    name = names.get(run_id)
    return f"flow run **{name}** (`{run_id}`)" if name else f"flow run `{run_id}`"


def _run_link(run_id: str | None, names: dict[str, str]) -> str:
    """A flow run in a table: its name (or short id) linked to its page in the UI, its id as the link's title."""
    if not run_id:
        return "an earlier run"
    from prefect.utilities.urls import url_for

    name = _cell(names.get(run_id) or run_id[:8])
    try:
        url = url_for("flow-run", obj_id=run_id)
    except Exception:
        url = None
    return f'[{name}]({url} "flow run {run_id}")' if url else f"**{name}**<br>`{run_id}`"


def task_io_markdown(io: "TaskRunIO", run_names: dict[str, str] | None = None) -> str:
    """The markdown of one task run's `dbnd-<task>-io` artifact."""
    names = run_names or {}
    lines = [f"### {io.task}: {_verb(io)}", ""]
    facts = [f"signature {_short(io.signature)}", f"task version `{io.task_version or 'none'}`",
             f"env `{io.env or '–'}`", f"state **{io.state or '–'}**"]
    lines += [" · ".join(facts), ""]
    if io.reused:
        when = f" at {_when(io.made_at)}" if io.made_at else ""
        lines += [f"Reused the version stored by {_run_name(io.made_by_flow_run, names)}{when}; "
                  f"the task body did not run.", ""]
    if io.inputs:
        # the URI last: a long one would push the short columns out of sight
        lines += ["**Read**", "", "| input | format | produced by | URI |", "|---|---|---|---|"]
        for ref in io.inputs:
            producer = f"{ref.producer_task}<br>{_short(ref.producer_signature)}" if ref.producer_task else "–"
            lines.append(f"| {_cell(ref.name)} | {_cell(ref.format)} | {producer} | {_link(ref.uri)} |")
        lines.append("")
    if io.outputs:
        lines += [f"**{'Reused' if io.reused else 'Wrote'}**", "",
                  "| output | format | rows | size | URI and checksum |", "|---|---|---|---|---|"]
        for ref in io.outputs:
            checksum = f"<br>checksum {_short(ref.checksum)}" if ref.checksum else ""
            lines.append(f"| {_cell(ref.name)} | {_cell(ref.format)} | {_cell(ref.rows)} | {_size(ref.bytes)} | "
                         f"{_link(ref.uri)}{checksum} |")
        lines.append("")
    elif not io.reused:
        lines += ["No output stored." if io.state == "Completed" else "No output written.", ""]
    lines += _full_uris([(f"input {ref.name}", ref.uri) for ref in io.inputs]
                        + [(f"output {ref.name}", ref.uri) for ref in io.outputs])
    if io.metrics:
        lines += ["**Metrics**", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(_metric_value(v))} |" for k, v in io.metrics.items()]
        lines.append("")
    if io.manifest_uri:
        lines.append(f"Manifest: {_full_link(io.manifest_uri)}")
    return "\n".join(lines).rstrip() + "\n"


def _when(iso: str) -> str:
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc)
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _metric_value(value: Any) -> Any:
    """A metric as one cell: a series (a list of values or of {"step", "value"} points) by its latest value."""
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _verb(io: "TaskRunIO") -> str:
    if io.reused:
        return "reused a stored version"
    if io.state == "Completed":
        return "ran"
    return io.state.lower() or "did not finish"


def data_flow_markdown(pipeline: str, state: str, flows: Sequence["TaskRunIO"],
                       run_names: dict[str, str] | None = None) -> str:
    """The markdown of a pipeline run's `dbnd-<pipeline>-data-flow` artifact: a row per task run (its name,
    signature and task version; its state and, for a reused version, the run that made it; what it read and
    wrote), then the full URIs the table shows shortened."""
    names = run_names or {}
    ran = sum(1 for io in flows if io.state == "Completed")
    reused = sum(1 for io in flows if io.reused)
    other = len(flows) - ran - reused
    counts = f"{len(flows)} task runs: {ran} ran, {reused} reused" + (f", {other} did not complete" if other else "")
    lines = [f"### Data flow of {pipeline}: {state}", "", counts, "",
             "| task | state | read and wrote |", "|---|---|---|"]
    for io in flows:
        version = f" · v{_cell(io.task_version)}" if io.task_version else ""
        task = f"{_cell(io.task)}<br>{_short(io.signature)}{version}"
        made_by = f"<br>made by<br>{_run_link(io.made_by_flow_run, names)}" if io.reused else ""
        data = "<br>".join([_read_cell(r) for r in io.inputs] + [_wrote_cell(r) for r in io.outputs]) or "–"
        lines.append(f"| {task} | {_cell(io.state)}{made_by} | {data} |")
    lines.append("")
    lines += _full_uris([(f"{io.task} wrote {ref.name}", ref.uri) for io in flows for ref in io.outputs]
                        + [(f"{io.task} read {ref.name}", ref.uri) for io in flows for ref in io.inputs])
    return "\n".join(lines).rstrip() + "\n"


def _read_cell(ref: "DataRef") -> str:
    """An input in the data-flow table: its name and link, then the task (with signature) whose output it is."""
    producer = f"<br>from {_cell(ref.producer_task)} {_short(ref.producer_signature)}" if ref.producer_task else ""
    return f"read **{_cell(ref.name)}** {_link(ref.uri)}{producer}"


def _wrote_cell(ref: "DataRef") -> str:
    """An output in the data-flow table: its name and link, then format · rows · size · checksum where known."""
    facts = [_cell(ref.format) if ref.format else None, f"{ref.rows} rows" if ref.rows is not None else None,
             _size(ref.bytes) if ref.bytes is not None else None, _short(ref.checksum) if ref.checksum else None]
    shown = " · ".join(f for f in facts if f)
    return f"wrote **{_cell(ref.name)}** {_link(ref.uri)}" + (f"<br>{shown}" if shown else "")


LIMIT_VARIABLE = "DBND_TASK_ARTIFACTS_MAX"
DEFAULT_LIMIT = 50  # each artifact is one request the server digests (~10-200 ms on a 2-core machine)


def task_artifacts_limit() -> int:
    """How many task runs of one pipeline run get an artifact of their own (DBND_TASK_ARTIFACTS_MAX, default 50)."""
    import os

    try:
        return max(0, int(os.environ.get(LIMIT_VARIABLE, DEFAULT_LIMIT)))
    except ValueError:
        return DEFAULT_LIMIT


def _has_own(io: "TaskRunIO") -> bool:
    """Whether a task run gets an artifact of its own: only where it says more than its row of the data-flow
    artifact (metrics, a failure, a reused version)."""
    return bool(io.task_run_id) and (io.state != "Completed" or bool(io.metrics))


def task_runs_shown(flows: Sequence["TaskRunIO"], limit: int) -> list["TaskRunIO"]:
    """The task runs that get their own artifact: at most `limit`, those that did not complete first, then
    those that ran, then the reused ones, each in pipeline order. Task runs that ran and logged no metric get
    none: the data-flow artifact shows all they read and wrote."""
    def rank(io: "TaskRunIO") -> int:
        return 2 if io.reused else (1 if io.state == "Completed" else 0)

    candidates = [io for io in flows if _has_own(io)]
    chosen = sorted(candidates, key=rank)[:limit]
    keep = {id(io) for io in chosen}
    return [io for io in candidates if id(io) in keep]


async def create_artifacts(client: Any, pipeline: str, flows: Sequence["TaskRunIO"], flow_run_id: str,
                           state: str) -> None:
    """Create the task-run artifacts and the pipeline-run artifact of one pipeline run with `client`.

    A task run that ran and logged no metric gets none of its own: the pipeline's shows it.
    """
    from prefect.client.schemas.actions import ArtifactCreate

    from dbnd_prefect.redaction import one_line

    reused_from = {io.made_by_flow_run for io in flows if io.reused} - {None}
    names = await _flow_run_names(client, reused_from) if reused_from else {}
    shown = task_runs_shown(flows, task_artifacts_limit())
    artifacts = [
        ArtifactCreate(key=task_io_key(io.task), type="markdown", data=task_io_markdown(io, names),
                       description=f"what task run {io.task} read and wrote", flow_run_id=flow_run_id,
                       task_run_id=io.task_run_id)
        for io in shown
    ]
    note = (f"Task-run artifacts for {len(shown)} of {len(flows)} task runs (failed first, then those that ran; "
            f"{LIMIT_VARIABLE} sets how many)." if len(shown) < sum(1 for io in flows if _has_own(io)) else "")
    artifacts.append(ArtifactCreate(
        key=data_flow_key(pipeline), type="markdown",
        data=data_flow_markdown(pipeline, state, flows, names) + (f"\n{note}\n" if note else ""),
        description=f"data flow of pipeline {pipeline}", flow_run_id=flow_run_id))
    import asyncio

    limit = asyncio.Semaphore(4)
    failures: list[str] = []

    async def create(artifact: Any) -> None:
        async with limit:
            if failures:
                return
            try:
                await client.create_artifact(artifact)
            except Exception as exc:
                failures.append(f"Artifact '{artifact.key}' could not be created in Prefect: {one_line(exc)}")

    await asyncio.gather(*(create(a) for a in artifacts))
    if failures:
        logger.warning("%s", failures[0])


async def _flow_run_names(client: Any, ids: set[str]) -> dict[str, str]:
    """Names of the flow runs with these ids (one request); those the server no longer knows are left out."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    try:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(ids))))
    except Exception:
        return {}
    return {str(run.id): run.name for run in runs}
