"""What one task run of a pipeline run read and wrote, as shown to a user: gathered from its manifest (a
reused run's points at the run that made the version), redacted, with links a browser can open."""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from typing import Any, Mapping, Sequence

from dbnd_prefect.history.manifest import read_manifest
from dbnd_prefect.redaction import redact


@dataclasses.dataclass
class DataRef:
    """One input or output of a task run, as shown to a user."""

    name: str
    uri: str | None  # redacted
    format: str | None = None
    bytes: int | None = None
    rows: int | None = None
    checksum: str | None = None
    producer_task: str | None = None  # inputs: the task whose output this is
    producer_signature: str | None = None


@dataclasses.dataclass
class TaskRunIO:
    """What one task run of a pipeline run read and wrote (or reused)."""

    task: str
    task_run_id: str | None
    state: str  # Prefect's state name: Completed, Cached, Failed, ...
    signature: str | None = None
    task_version: str | None = None
    env: str | None = None
    inputs: list[DataRef] = dataclasses.field(default_factory=list)
    outputs: list[DataRef] = dataclasses.field(default_factory=list)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    manifest_uri: str | None = None  # redacted
    made_by_flow_run: str | None = None  # the flow run whose task run wrote the outputs
    made_at: str | None = None  # when that task run ended (ISO 8601)

    @property
    def reused(self) -> bool:
        return self.state == "Cached"


def collect(entries: Sequence[Mapping[str, Any]]) -> list[TaskRunIO]:
    """The data flow of a pipeline run from its task-run summaries (`PipelineScope.summaries()`)."""
    flows = []
    for entry in entries:
        io = TaskRunIO(task=entry["task"], task_run_id=entry.get("task_run_id"), state=entry.get("state") or "",
                       signature=entry.get("signature"))
        manifest_uri = entry.get("manifest")
        manifest = read_manifest(manifest_uri) if manifest_uri else None
        if manifest_uri:
            io.manifest_uri = redact(manifest_uri)
        if manifest is not None:
            _fill_from_manifest(io, manifest)
        elif entry.get("outputs"):
            io.outputs = [DataRef(name, redact(uri)) for name, uri in entry["outputs"].items()]
        flows.append(io)
    return flows


def _fill_from_manifest(io: TaskRunIO, manifest: Mapping[str, Any]) -> None:
    parts = manifest.get("signature_parts") or {}
    io.task_version, io.env = parts.get("task_version"), parts.get("env")
    io.metrics = dict(manifest.get("metrics") or {})
    io.made_by_flow_run = (manifest.get("prefect") or {}).get("flow_run_id")
    io.made_at = manifest.get("ended")
    for entry in manifest.get("inputs") or []:
        io.inputs.append(DataRef(
            name=str(entry.get("name")), uri=redact(entry["uri"]) if entry.get("uri") else None,
            format=entry.get("format"), producer_task=entry.get("producer_task"),
            producer_signature=entry.get("producer_signature")))
    for name, info in (manifest.get("outputs") or {}).items():
        io.outputs.append(DataRef(
            name=name, uri=redact(info["uri"]) if info.get("uri") else None, format=info.get("format"),
            bytes=info.get("bytes"), rows=info.get("rows"), checksum=info.get("checksum")))


def browse_url(uri: str | None) -> str | None:
    """A link a browser can open for a stored file, or None when its store has none.

    Local files as `file://` URLs; S3 and GCS objects in their consoles (or, for S3 behind a custom
    endpoint such as an emulator, on that endpoint). Azure needs the account name, which a URI lacks.
    """
    if not uri or "://" not in uri:
        return "file://" + urllib.parse.quote(os.path.abspath(uri)) if uri else None
    scheme, rest = uri.split("://", 1)
    scheme = scheme.lower()
    if scheme == "file":
        return "file://" + urllib.parse.quote(rest if rest.startswith("/") else "/" + rest)
    bucket, _, key = rest.partition("/")
    if "@" in bucket:  # user info never goes into a link
        bucket = bucket.rsplit("@", 1)[1]
    if scheme in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            return f"{endpoint.rstrip('/')}/{bucket}/{urllib.parse.quote(key)}"
        return (f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={urllib.parse.quote(key)}")
    if scheme in ("gs", "gcs") and not os.environ.get("STORAGE_EMULATOR_HOST"):
        return f"https://console.cloud.google.com/storage/browser/_details/{bucket}/{urllib.parse.quote(key)}"
    return None


__all__ = ["DataRef", "TaskRunIO", "collect", "browse_url"]
