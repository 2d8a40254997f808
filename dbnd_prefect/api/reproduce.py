"""Re-run a recorded run with exactly its recorded inputs and parameters, and compare checksums."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import uuid
import os
from typing import Any, Sequence

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
        from dbnd_prefect.api.discovery import find_by_identity

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
    from dbnd_prefect.definitions import registry as task_registry

    for item in task_registry.all_items().values():
        if getattr(item, "func", None) is getattr(obj, "func", obj):
            return item
    raise TaskNotFoundError(f"'{task_id}' recorded in the manifest is not a dbnd task any more")


def _rerun_recorded(run_id: str, data_root: str) -> list[ReproducedOutput]:
    """Re-run each task of recorded run `run_id` (under `data_root`) with its recorded inputs and parameters."""
    from dbnd_prefect.config import config_context
    from dbnd_prefect.context import last_run

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
            task(**{k: v for k, v in arguments.items() if k in task.param_map})  # a one-task flow run
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


def reproduce(run_id: str, config: Any = None, modules: Sequence[str] = (),
              cwd: str | os.PathLike[str] | None = None) -> list[ReproducedOutput]:
    """Re-run every task recorded for Prefect flow run `run_id` (an id prefix will do) with its recorded
    inputs and parameters; the outputs with both checksums (`ReproducedOutput.matches`).

    `config` defaults to the configuration in effect; `modules` are imported first (as `-m` does).

    ParameterError when no run, or more than one, matches `run_id`; TaskFailedError when a task fails.
    """
    from dbnd_prefect.api.failure import failed
    from dbnd_prefect.api.run import data_root_of
    from dbnd_prefect.config import config_context, current_config, resolve_run_config
    from dbnd_prefect.api.discovery import import_modules, put_on_path
    from dbnd_prefect.errors import DbndError, ParameterError

    text = run_id.strip().lower()
    if not text or any(c not in "0123456789abcdef-" for c in text):
        raise ParameterError(f"'{run_id}' is not a Prefect flow run id",
                             hint="pass the FLOW RUN column of `dbnd versions TASK` (a prefix will do)")
    config = current_config() if config is None else config
    resolved = resolve_run_config(config)
    root = data_root_of(resolved)
    runs = _recorded_runs(root, text)
    if not runs:
        raise ParameterError(f"no recorded task runs for flow run '{run_id}' under {root}",
                             hint="see `dbnd versions TASK` for the flow runs that wrote outputs; "
                                  "a run whose tasks were all reused from earlier runs recorded nothing new")
    if len(runs) > 1:
        raise ParameterError(f"flow run id '{run_id}' is ambiguous: it starts {len(runs)} recorded runs "
                             f"({', '.join(r[:13] for r in runs[:5])})", hint="give more characters of the id")
    put_on_path(cwd)  # the recorded tasks are imported by module name, as the run that recorded them did
    import_modules(resolved.settings.modules, "[run] modules")
    import_modules(modules)
    with config_context(config):
        try:
            return _rerun_recorded(text, root)
        except DbndError:
            raise  # names its culprit already (a recorded input that is gone, a secret parameter...)
        except Exception as exc:
            raise failed(None, exc) from exc


def _recorded_runs(root: str, prefix: str) -> list[str]:
    """The ids of the recorded runs that `prefix` selects: by their run records first (a run whose tasks were
    all reused has no manifests of its own), else by the manifests their task runs wrote."""
    from dbnd_prefect.history.run_record import find_run_records

    recorded = sorted({str(r["flow_run_id"]) for r in find_run_records(root, prefix) if r.get("flow_run_id")})
    return recorded or sorted({_matching_run(m, prefix) for m in run_manifests(root, prefix)})


def _matching_run(manifest: dict, prefix: str) -> str:
    """The recorded run id (the root flow run's, or the task's own flow run's) that `prefix` selects."""
    ids = manifest.get("prefect", {})
    root = str(ids.get("root_flow_run_id") or "")
    return root if root.startswith(prefix) else str(ids.get("flow_run_id"))
