"""Re-run a recorded run with exactly its recorded inputs and parameters, and compare checksums."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import uuid
from typing import Any

from dbnd_prefect.errors import ParameterError, TaskNotFoundError

logger = logging.getLogger("dbnd_prefect")


@dataclasses.dataclass
class ReproducedOutput:
    task: str
    output: str
    original_checksum: str | None
    checksum: str | None
    uri: str | None

    @property
    def matches(self) -> bool:
        return self.checksum is not None and self.checksum == self.original_checksum


def run_manifests(data_root: str, run_id: str) -> list[dict[str, Any]]:
    """Manifests of every task run Prefect flow run `run_id` (a prefix will do) made or reused, in run order.

    The run record lists them all, reused outputs included; a run without one (it was killed, or it
    is a nested pipeline's flow run) is found by scanning the manifests its task runs wrote.
    """
    from dbnd_prefect.history.versions import read_manifests
    from dbnd_prefect.history.manifest import read_manifest
    from dbnd_prefect.history.run_record import find_run_records

    run_id = run_id.lower()
    listed: dict[str, dict[str, Any]] = {}
    for record in find_run_records(data_root, run_id):
        for entry in record.get("task_runs", []):
            uri = entry.get("manifest")
            manifest = read_manifest(uri) if uri and uri not in listed else None
            if manifest is not None:
                listed[uri] = {**manifest, "uri": uri}
    if listed:
        return list(listed.values())
    found = [m for m in read_manifests(data_root)
             if any(str(m.get("prefect", {}).get(k) or "").startswith(run_id)
                    for k in ("flow_run_id", "root_flow_run_id"))]
    found.sort(key=lambda m: m.get("started", ""))
    return found


def _import_task(task_id: str) -> Any:
    from dbnd_prefect.identity import is_identity

    if is_identity(task_id):  # `flows/x.py:func`: found by its file in the project
        from dbnd_prefect.discovery import find_by_identity

        return find_by_identity(task_id)
    module_name, _, attr = task_id.rpartition(".")  # a manifest from before identities were file based
    while module_name:
        try:
            module = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
    else:
        raise TaskNotFoundError(f"cannot import task '{task_id}' recorded in the manifest")
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        raise TaskNotFoundError(f"task '{task_id}' recorded in the manifest no longer exists")
    from dbnd_prefect import registry

    for item in registry.all_items().values():
        if getattr(item, "func", None) is getattr(obj, "func", obj):
            return item
    raise TaskNotFoundError(f"'{task_id}' recorded in the manifest is not a dbnd task any more")


def reproduce(run_id: str) -> list[ReproducedOutput]:
    """Re-run each task of recorded run `run_id` with its recorded inputs and parameters."""
    from dbnd_prefect.config import config_context
    from dbnd_prefect.runtime import last_run, make_run_context

    data_root = make_run_context().data_root
    manifests = run_manifests(data_root, run_id)
    if not manifests:
        raise ParameterError(f"no recorded task runs for run '{run_id}' under {data_root}",
                             hint="pass a Prefect flow run id shown by `dbnd versions TASK`")
    version = f"reproduce-{uuid.uuid4().hex[:8]}"
    results: list[ReproducedOutput] = []
    for manifest in manifests:
        task = _import_task(manifest["signature_parts"]["task"])
        arguments = dict(manifest.get("parameters", {}))
        masked = [name for name, value in arguments.items() if value == "****"]
        if masked:
            raise ParameterError(f"task '{task.name}' was recorded with secret parameter(s) {masked}",
                                 hint=f"pass them with --override {task.name}.{masked[0]}=VALUE")
        for entry in manifest.get("inputs", []):
            if entry.get("uri") is None:
                raise ParameterError(f"task '{task.name}' input '{entry['name']}' was given in memory, not by URI; "
                                     "it cannot be reproduced")
            spec = task.param_map.get(entry["name"])
            if spec is not None and spec.is_data:
                arguments[entry["name"]] = entry["uri"]
            else:  # an untyped input produced upstream (a model, say): hand over the value itself
                from dbnd_prefect.targets import Target

                arguments[entry["name"]] = Target(entry["uri"], format=entry.get("format")).load(
                    entry.get("type_key"))
        with config_context({f"{task.name}.task_version": version}):
            task.as_pipeline()(**{k: v for k, v in arguments.items() if k in task.param_map})
        entry = next(e for e in last_run().task_runs if e["task"] == task.name)
        new_manifest = json.loads(_read(entry["manifest"]))
        for name, original in manifest.get("outputs", {}).items():
            now = new_manifest.get("outputs", {}).get(name, {})
            results.append(ReproducedOutput(task.name, name, original.get("checksum"), now.get("checksum"),
                                            now.get("uri")))
    return results


def _read(uri: str) -> bytes:
    from dbnd_prefect.targets import Target

    with Target(uri, format="json").open("rb") as f:
        return f.read()
