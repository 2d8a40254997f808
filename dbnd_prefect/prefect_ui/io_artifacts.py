"""The artifacts a user reads in the Prefect UI about a pipeline run's data.

Per pipeline run, `dbnd-<pipeline>-data-flow`: every task run, which URI and version it read (and whose output
that was) and wrote (format, rows, size, checksum), its signature and task version, and for a reused version
which run made it. Per task run, `dbnd-<task>-io`, only where it adds something to that table: a task run that
logged metrics, did not complete, or reused a stored version (each artifact is one request the server digests:
~15 ms of its CPU; data profiles have their own artifact, `profiles-<task>`). Keys are stable across runs, so Prefect's per-key
history compares runs.
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


def _link(uri: str | None) -> str:
    from dbnd_prefect.redaction import redact

    if not uri:
        return "–"
    url = browse_url(uri)
    shown = _cell(redact(uri))
    return f"[{shown}]({redact(url)})" if url else f"`{shown}`"


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
            producer = f"{ref.producer_task} {_short(ref.producer_signature)}" if ref.producer_task else "–"
            lines.append(f"| {_cell(ref.name)} | {_cell(ref.format)} | {producer} | {_link(ref.uri)} |")
        lines.append("")
    if io.outputs:
        lines += [f"**{'Reused' if io.reused else 'Wrote'}**", "",
                  "| output | format | size | rows | checksum | URI |", "|---|---|---|---|---|---|"]
        for ref in io.outputs:
            lines.append(f"| {_cell(ref.name)} | {_cell(ref.format)} | {_size(ref.bytes)} | {_cell(ref.rows)} | "
                         f"{_short(ref.checksum)} | {_link(ref.uri)} |")
        lines.append("")
    elif not io.reused:
        lines += ["No output stored." if io.state == "Completed" else "No output written.", ""]
    if io.metrics:
        lines += ["**Metrics**", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(_metric_value(v))} |" for k, v in io.metrics.items()]
        lines.append("")
    if io.manifest_uri:
        lines.append(f"Manifest: {_link(io.manifest_uri)}")
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
    """The markdown of a pipeline run's `dbnd-<pipeline>-data-flow` artifact."""
    names = run_names or {}
    ran = sum(1 for io in flows if io.state == "Completed")
    reused = sum(1 for io in flows if io.reused)
    other = len(flows) - ran - reused
    counts = f"{len(flows)} task runs: {ran} ran, {reused} reused" + (f", {other} did not complete" if other else "")
    lines = [f"### Data flow of {pipeline}: {state}", "", counts, "",
             "| task | state | signature | task version | read | wrote | version made by |",
             "|---|---|---|---|---|---|---|"]
    for io in flows:
        read = "; ".join(_read_cell(r) for r in io.inputs) or "–"
        wrote = "; ".join(_wrote_cell(r) for r in io.outputs) or "–"
        made_by = _run_name(io.made_by_flow_run, names) if io.reused else ("this run" if io.outputs else "–")
        lines.append(f"| {_cell(io.task)} | {_cell(io.state)} | {_short(io.signature)} | "
                     f"{_cell(io.task_version)} | {read} | {wrote} | {made_by} |")
    return "\n".join(lines) + "\n"


def _read_cell(ref: "DataRef") -> str:
    """An input in the data-flow table: its name, link and the task (with signature) whose output it is."""
    producer = f" from {ref.producer_task} {_short(ref.producer_signature)}" if ref.producer_task else ""
    return f"{_cell(ref.name)}: {_link(ref.uri)}{producer}"


def _wrote_cell(ref: "DataRef") -> str:
    """An output in the data-flow table: its name, link, then format · rows · size · checksum where known."""
    facts = [_cell(ref.format) if ref.format else None, f"{ref.rows} rows" if ref.rows is not None else None,
             _size(ref.bytes) if ref.bytes is not None else None, _short(ref.checksum) if ref.checksum else None]
    shown = " · ".join(f for f in facts if f)
    return f"{_cell(ref.name)}: {_link(ref.uri)}" + (f" ({shown})" if shown else "")


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
