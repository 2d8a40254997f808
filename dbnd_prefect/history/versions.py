"""Stored versions of a task's outputs, found through their manifests, and why signatures differ."""

from __future__ import annotations

import json
from typing import Any

from dbnd_prefect import layout


def read_manifests(data_root: str, env: str = "*", task_name: str = "*") -> list[dict[str, Any]]:
    """Every readable manifest under `data_root` (optionally one env's or one task's), each with its `uri`."""
    return read_json_glob(layout.manifest_glob(data_root, env, task_name))


def read_json_glob(pattern_uri: str) -> list[dict[str, Any]]:
    """Every readable JSON document matching a glob pattern (local path or URI), each with its `uri`."""
    from dbnd_prefect.targets import get_filesystem, split_uri

    protocol, pattern = split_uri(pattern_uri)
    fs = get_filesystem(protocol)
    found = []
    for path in fs.glob(pattern):
        try:
            with fs.open(path, "rb") as f:
                document = json.loads(f.read())
        except (OSError, ValueError):
            continue
        document["uri"] = path if protocol == "file" else f"{protocol}://{path}"
        found.append(document)
    return found


def list_versions(data_root: str, task_name: str, env: str | None = None) -> list[dict[str, Any]]:
    """Every complete stored run of `task_name` under `data_root`, newest first (manifests, with `uri`)."""
    found = [m for m in read_manifests(data_root, env or "*", task_name) if m.get("task") == task_name]
    found.sort(key=lambda m: m.get("ended", ""), reverse=True)
    return found


def _describe_param_change(name: str, old: str | None, new: str | None) -> str:
    if old is None:
        return f"parameter '{name}' is new"
    if new is None:
        return f"parameter '{name}' was removed"
    if new.startswith("output:") or old.startswith("output:"):
        return f"input '{name}' changed (its upstream task's signature changed)"
    if new.startswith("target:") and old.startswith("target:"):
        old_uri, new_uri = old.split(":", 2)[1:3], new.split(":", 2)[1:3]
        if old_uri[0] != new_uri[0]:
            return f"input '{name}' now points at another location"
        return f"input '{name}' changed on storage"
    return f"parameter '{name}' changed"


def explain_difference(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why signature parts `new` differ from `old` (both as in a manifest's `signature_parts`)."""
    reasons = []
    if old.get("task") != new.get("task"):
        reasons.append(f"task identity changed ({old.get('task')} -> {new.get('task')}: the file or function moved)")
    if old.get("code") != new.get("code"):
        reasons.append("code changed (the task function or a project function it calls)")
    if old.get("task_version") != new.get("task_version"):
        reasons.append(f"task_version changed ({old.get('task_version')} -> {new.get('task_version')})")
    if old.get("env") != new.get("env"):
        reasons.append(f"environment changed ({old.get('env')} -> {new.get('env')})")
    old_params, new_params = old.get("params", {}), new.get("params", {})
    for name in sorted(set(old_params) | set(new_params)):
        if old_params.get(name) != new_params.get(name):
            reasons.append(_describe_param_change(name, old_params.get(name), new_params.get(name)))
    return reasons
