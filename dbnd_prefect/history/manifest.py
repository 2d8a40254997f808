"""The JSON manifest written beside a task's outputs, and its verification.

The manifest is written last: its presence marks the output set as complete (object stores have no
rename). It is plain JSON, readable without this library, and validates against
`dbnd_prefect/manifest.schema.json`.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
from typing import Any, Mapping, Sequence

SCHEMA_VERSION = 1
_SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|api_?key|access_?key|credential|private_?key)")
_MASK = "****"


def mask_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as recorded: JSON-friendly, secrets (by parameter name) masked."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if _SECRET_NAME.search(name):
            out[name] = _MASK
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, (dt.date, dt.datetime)):
            out[name] = value.isoformat()
        else:
            out[name] = f"<{type(value).__module__}.{type(value).__qualname__}>"
    return out


def mask_secret_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready parameter values with secret-named ones masked and credentials redacted from text, at any depth
    (types kept otherwise, unlike `mask_parameters`)."""
    from dbnd_prefect.redaction import redact

    def clean(name: str, value: Any) -> Any:
        if _SECRET_NAME.search(name.rpartition(".")[2]) and value not in (None, ""):
            return _MASK
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, Mapping):
            return {key: clean(str(key), inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [clean("", inner) for inner in value]
        return value

    return {name: clean(name, value) for name, value in params.items()}


def mask_command_line(args: Sequence[str]) -> list[str]:
    """A command line as recorded: credentials redacted, the value of a secret-named `KEY=VALUE` masked
    (`--set train.api_token=...`)."""
    from dbnd_prefect.redaction import redact

    masked = []
    for arg in args:
        key, equals, _ = arg.partition("=")
        secret = equals and not key.startswith("-") and _SECRET_NAME.search(key.rpartition(".")[2])
        masked.append(f"{key}={_MASK}" if secret else redact(arg))
    return masked


@functools.lru_cache(maxsize=None)
def git_commit(cwd: str) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("dbnd-prefect", "prefect", "pandas", "pyarrow", "numpy", "fsspec"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def build_manifest(
    *,
    task_name: str,
    signature: Any,
    inputs: list[dict[str, Any]],
    parameters: Mapping[str, Any],
    outputs: Mapping[str, Mapping[str, Any]],
    flow_run_id: str | None,
    task_run_id: str | None,
    root_flow_run_id: str | None,
    started: dt.datetime,
    ended: dt.datetime,
    command_line: list[str] | None,
    cwd: str,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest document for one finished task run."""
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task_name,
        "signature": signature.digest,
        "signature_parts": signature.parts(),
        "code_fingerprint": signature.code,
        "inputs": inputs,
        "parameters": mask_parameters(parameters),
        "outputs": {name: dict(info) for name, info in outputs.items()},
        "metrics": dict(metrics or {}),
        "prefect": {"flow_run_id": flow_run_id, "task_run_id": task_run_id, "root_flow_run_id": root_flow_run_id},
        "git_commit": git_commit(cwd),
        "user": _user(),
        "command_line": mask_command_line(command_line if command_line is not None else sys.argv),
        "packages": package_versions(),
        "started": started.isoformat(),
        "ended": ended.isoformat(),
    }


@functools.lru_cache(maxsize=None)
def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def read_manifest(uri: str) -> dict[str, Any] | None:
    """The manifest at `uri`, or None when it is missing or unreadable."""
    from dbnd_prefect.targets import Target

    target = Target(uri, format="json")
    try:
        if not target.exists():
            return None
        with target.open("rb") as f:
            return json.loads(f.read())
    except Exception:
        return None
