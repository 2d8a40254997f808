"""Deployments of pipelines for an environment profile: `prefect.yaml` entries, applied by `prefect deploy`.

    from dbnd_prefect.api.deploy import deploy
    deploy(["flows/wine_quality.py:predict_wine_quality"], env="docker", parameters={"train_model.alpha": 0.3})

The profile (see `dbnd show-env NAME`) gives the work pool and job variables once; `deploy` writes or
updates one normal `prefect.yaml` entry per pipeline (comments and other entries kept), so plain
`prefect deploy --all` keeps working, then applies them with Prefect's own `prefect deploy --name ...`.
Checked before anything is written or submitted: the work pool exists on the server with the profile's
type, every parameter is one the flow declares and coerces, and for a profile that runs off this machine
every local input file is uploaded to the profile's data root (content-addressed) or refused.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from dbnd_prefect.api.discovery import find_task
from dbnd_prefect.api.run import build_config, data_root_of
from dbnd_prefect.config.reach import check_data_reachable, remote_compute
from dbnd_prefect.config.work_pools import profile_job_variables
from dbnd_prefect.definitions.coerce import coerce
from dbnd_prefect.definitions.introspect import called_tasks
from dbnd_prefect.engine.flow_signature import checked_settings
from dbnd_prefect.errors import ConfigError, DbndError, ParameterError, TargetError, suggest
from dbnd_prefect.runtime.work_pool_check import check_work_pool
from dbnd_prefect.targets import split_uri
from dbnd_prefect.targets.uploads import upload_file

PREFECT_FILE = "prefect.yaml"


class DeployError(DbndError):
    """`prefect deploy` refused a deployment that dbnd checked (its own message follows)."""

    exit_code = 1


@dataclasses.dataclass
class PlannedDeployment:
    """One deployment as it goes into `prefect.yaml`."""

    flow_name: str
    name: str
    entry: dict[str, Any]
    uploaded: dict[str, str]  # parameter -> the URI its local file was uploaded to

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def parse_parameter(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` with the value read as JSON when it is JSON (as `prefect deployment run --param` does)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--param {text!r} is not KEY=VALUE", hint="e.g. --param train_model.alpha=0.3")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def deploy(
    pipelines: Sequence[str],
    env: str | None = None,
    *,
    name: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    cron: str | None = None,
    interval: float | None = None,
    prefect_file: str | os.PathLike[str] = PREFECT_FILE,
    apply: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    conf_files: Sequence[str] = (),
    set_values: Sequence[Mapping[str, Any]] = (),
    override_values: Sequence[Mapping[str, Any]] = (),
    modules: Sequence[str] = (),
) -> list[PlannedDeployment]:
    """Create or update the deployments of `pipelines` for profile `env` (default: the active one).

    Writes their `prefect.yaml` entries and, with `apply`, runs `prefect deploy` on them. DbndError (exit
    code 2) before anything is written for a missing work pool, an unknown or bad parameter, or an
    unreachable input.
    """
    base = Path(cwd or Path.cwd()).resolve()
    run_config = build_config(base, conf_files, set_values, override_values, env=env)
    resolved, settings = run_config.profile, run_config.settings
    profile_name = resolved.name
    if cron and interval:
        raise ConfigError("give --cron or --interval, not both", hint="one schedule per deployment")
    if name and len(pipelines) > 1:
        raise ConfigError("--name names one deployment, but several pipelines were given",
                          hint="deploy them one at a time, or leave --name out")
    objects = [_find_pipeline(p, [*settings.modules, *modules], base) for p in pipelines]
    values = dict(parameters or {})
    for obj in objects:
        check_parameters(obj, values)
    api_url = _api_url(settings.api)
    check_work_pool(resolved.profile.work_pool.name, resolved.profile.work_pool.type, profile_name, api_url)
    remote = _runs_off_this_machine(resolved)
    if remote:
        check_data_reachable(resolved, settings.data_root, settings.storage_block)
    planned = []
    for obj in objects:
        own, uploaded = dict(values), {}
        if remote:
            own, uploaded = upload_inputs(obj, own, data_root_of(run_config), base)
        planned.append(PlannedDeployment(obj.name, name or default_name(obj, profile_name),
                                         deployment_entry(obj, base, profile_name, resolved, own, cron, interval,
                                                          name or default_name(obj, profile_name)), uploaded))
    path = Path(prefect_file)
    path = path if path.is_absolute() else base / path
    write_entries(path, [p.entry for p in planned])
    if apply:
        apply_entries(path, [p.full_name for p in planned], base, api_url)
    return planned


def default_name(obj: Any, profile: str) -> str:
    """`predict-wine-quality-docker`: the pipeline and the profile it runs in."""
    return f"{obj.name.replace('_', '-')}-{profile.replace('_', '-')}"


def _find_pipeline(name: str, modules: Sequence[str], cwd: Path) -> Any:
    obj = find_task(name, modules, cwd)
    if obj.kind != "pipeline":
        raise ConfigError(f"{name} is a task; a deployment runs a pipeline",
                          hint="wrap it in a @pipeline that calls it, and deploy that")
    return obj


def entrypoint_of(obj: Any, cwd: Path) -> str:
    """`flows/wine_quality.py:predict_wine_quality`: the pipeline's file relative to the project."""
    source = Path(inspect.getsourcefile(obj.func) or "").resolve()
    try:
        relative = source.relative_to(cwd)
    except ValueError:
        raise ConfigError(f"pipeline {obj.name} is defined in {source}, outside the project {cwd}",
                          hint="deploy from the directory that holds the pipeline's code") from None
    return f"{relative.as_posix()}:{obj.func.__qualname__}"


def check_parameters(obj: Any, values: Mapping[str, Any]) -> None:
    """ParameterError naming the first key the pipeline's flow does not declare or whose value does not coerce."""
    declared = inspect.signature(obj.fn).parameters
    for key, value in values.items():
        if key not in declared:
            raise ParameterError(f"--param {key}: {obj.name} has no deployment parameter {key!r}"
                                 f"{suggest(key, list(declared))}",
                                 hint=f"deployment parameters: {', '.join(declared)}")
        spec = obj.param_map.get(key)
        if spec is not None and not spec.is_data:
            try:
                coerce(obj.name, spec, value)
            except ParameterError as exc:
                raise ParameterError(f"--param {exc.message}", hint=exc.hint) from None
    checked_settings(obj, {k: v for k, v in values.items() if "." in k}, inspect.signature(obj.fn))


def _api_url(configured: str | None) -> str | None:
    from dbnd_prefect.runtime.prefect_api import choose_api, use_api

    return use_api(choose_api(configured))


def _runs_off_this_machine(resolved: Any) -> bool:
    return remote_compute(resolved) is not None


def upload_inputs(obj: Any, values: Mapping[str, Any], data_root: str, cwd: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """`values` with each local file given to a data parameter uploaded under `data_root/inputs/DIGEST/NAME`.

    The digest is of the file's content, so an unchanged file is uploaded once and keeps its URI (and the
    runs' signatures). A path that is no file is refused (TargetError naming the parameter).
    """
    changed, uploaded = dict(values), {}
    for key, value in values.items():
        if not isinstance(value, str) or not _is_data_parameter(obj, key):
            continue
        protocol, path = split_uri(value)
        if protocol != "file":
            continue
        local = Path(path) if Path(path).is_absolute() else cwd / path
        if not local.is_file():
            raise TargetError(f"--param {key}={value}: no such file ({local}); a remote run cannot read it either",
                              hint="give an existing file (it is uploaded to the data root) or a URI")
        changed[key] = uploaded[key] = upload_file(local, data_root)
    return changed, uploaded


def _is_data_parameter(obj: Any, key: str) -> bool:
    if "." not in key:
        spec = obj.param_map.get(key)
        return spec is not None and spec.is_data
    task_name, _, param = key.rpartition(".")
    task = next((t for t in called_tasks(obj) if t.name == task_name), None)
    spec = task.param_map.get(param) if task is not None else None
    return spec is not None and spec.is_data



def deployment_entry(obj: Any, cwd: Path, profile: str, resolved: Any, parameters: Mapping[str, Any],
                     cron: str | None, interval: float | None, name: str) -> dict[str, Any]:
    """The `prefect.yaml` entry of a deployment of `obj` for `profile`."""
    job_variables = profile_job_variables(resolved, profile)
    entry: dict[str, Any] = {
        "name": name,
        "entrypoint": entrypoint_of(obj, cwd),
        "description": f"{obj.name} in environment '{profile}' (written by dbnd deploy)",
        "parameters": dict(parameters),
        "enforce_parameter_schema": True,
        "work_pool": {"name": resolved.profile.work_pool.name, "job_variables": job_variables},
    }
    if cron:
        entry["schedules"] = [{"cron": cron, "timezone": "UTC"}]
    elif interval:
        entry["schedules"] = [{"interval": interval}]
    return entry


def write_entries(path: Path, entries: Sequence[Mapping[str, Any]]) -> None:
    """Add or update `entries` (by name) in the `prefect.yaml` at `path`, keeping its comments and other
    entries; an updated entry keeps the parameters and schedules it had unless new ones are given."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    if path.exists():
        document = yaml.load(path.read_text()) or {}
    else:
        import prefect

        document = {"name": path.parent.name, "prefect-version": prefect.__version__,
                    "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}]}
    deployments = document.setdefault("deployments", [])
    for entry in entries:
        existing = next((d for d in deployments if d.get("name") == entry["name"]), None)
        if existing is None:
            deployments.append(dict(entry))
            continue
        for key, value in entry.items():
            if key == "parameters":
                existing.setdefault("parameters", {}).update(value)
            elif key == "description" and existing.get("description"):
                continue
            else:
                existing[key] = value
    with path.open("w") as handle:
        yaml.dump(document, handle)


def apply_entries(path: Path, names: Sequence[str], cwd: Path, api_url: str | None) -> None:
    """`prefect --no-prompt deploy --name ...` on the entries just written (Prefect builds their schema)."""
    args = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", str(path)]
    for full_name in names:
        args += ["--name", full_name]
    env = {**os.environ, "PWD": str(cwd)}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        raise DeployError(f"prefect deploy failed: {' '.join(lines[-3:])}",
                          hint=f"the entries are written in {path}; fix and run: prefect deploy --all")
