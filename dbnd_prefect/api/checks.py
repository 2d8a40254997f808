"""The checks a run request passes before anything runs: task sections, parameter values, input files.

Everything is checked against the run it will run in (its configuration resolved once, its storage chosen),
so a mistake is one DbndError naming the culprit and its source (`at dbnd.toml:3`, `--set ...`), and what the
checks resolve (coerced values, the root call's arguments and input Targets) is what the run then uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from dbnd_prefect.calls import BoundCall, bind_arguments, bound, configured_values, data_inputs, selected
from dbnd_prefect.config.model import RESERVED_SECTIONS, DbndConfig
from dbnd_prefect.config.settings import task_values
from dbnd_prefect.definitions import registry
from dbnd_prefect.definitions.spec import ParamSpec, input_target
from dbnd_prefect.errors import ConfigError, DbndError, TargetError, suggest
from dbnd_prefect.targets import Target, format_for_uri, split_uri
from dbnd_prefect.targets.folder import FOLDER_TYPE_KEYS
from dbnd_prefect.targets.target import check_folder_uri
from dbnd_prefect.versioning.selectors import is_selector

if TYPE_CHECKING:
    from dbnd_prefect.context import RunContext

RESERVED_TASK_KEYS = ("task_version",)
_NOT_LOADED = ("pathlib.Path", "dbnd_prefect.Target")  # data parameters handed over as they are


def checked_root(obj: Any, run: "RunContext", root_run: "RunContext") -> BoundCall:
    """Check a run of `obj` in `run` and bind its root call (in `root_run`, its task's environment).

    Configured values of every known task are coerced (once per run: the run keeps them), typed data inputs
    are checked, and the root call's data inputs exist (remote ones with one metadata request each)
    before its signature is computed.
    """
    config = run.config
    items = registry.all_items()
    items[obj.name] = obj  # the one being run, also when other modules define its name
    _check_sections(config, items)
    for name, item in items.items():
        check_task_keys(config, name, [p.name for p in item.params])
        configured_values(item, run)
    for name, item in items.items():  # the other tasks' typed inputs (the root's are checked as bound, below)
        if name == obj.name:
            continue
        for key, found in configured_values(item, run)[0].items():
            spec = item.param_map[key]
            if spec.is_data and (found.found.layer in ("set", "override") or is_selector(found.value)):
                source = found.found.source
                value = selected(name, key, found.value, run, source) if is_selector(found.value) else found.value
                check_input(item, spec, value, source)
    arguments = bind_arguments(obj, (), {}, root_run)  # resolves version selectors
    inputs = {}
    for key, value in arguments.items():
        target = check_input(obj, obj.param_map[key], value, source_of(config, obj.name, key))
        if target is not None:
            inputs[key] = target
    check_remote_inputs(obj, inputs, config)
    unchecked = {k: v for k, v in arguments.items() if k not in inputs}  # Targets given as such, folders
    return bound(obj, arguments, root_run, inputs={**data_inputs(obj, unchecked), **inputs})


def check_task_keys(config: DbndConfig, task_name: str, params: list[str]) -> None:
    """A configured key of `task_name` that names none of its parameters (or `task_version`) is a ConfigError."""
    for key, found in config.section(task_name).items():
        if key not in params and key not in RESERVED_TASK_KEYS:
            raise ConfigError(
                f"unknown parameter {task_name}.{key} at {found.source}{suggest(key, params)}",
                hint=f"parameters of {task_name}: {', '.join(params) if params else 'none'}",
            )


def _check_sections(config: DbndConfig, items: Mapping[str, Any]) -> None:
    """A --set/--override section that names no known task is a typo, not a value to ignore."""
    for section in config.sections():
        if section in RESERVED_SECTIONS or section == "task" or section.startswith("env.") or section in items:
            continue
        typed = [v for v in config.section(section).values() if v.layer in ("set", "override")]
        if typed:
            raise ConfigError(
                f"unknown task '{section}' in {typed[0].source}{suggest(section, list(items))}",
                hint=f"known tasks: {', '.join(sorted(items)) or 'none'}",
            )


def source_of(config: DbndConfig, task_name: str, key: str) -> str:
    """Where the value of `task_name.key` came from: a config file line, a flag, or the default."""
    found = config.overrides_for(task_name).get(key) or task_values(config, task_name).get(key)
    return found.source if found is not None else "the parameter's default"


def check_input(item: Any, spec: ParamSpec, value: Any, source: str) -> Target | None:
    """The Target a data parameter's path or URI reads from, after checking it has a known format and, if
    local, exists; None for values that are not a path (in-memory values, inline JSON, folders)."""
    if not spec.is_data or spec.type_key in _NOT_LOADED or not isinstance(value, (str, os.PathLike)):
        return None
    text = os.fspath(value)
    if spec.type_key in ("dict", "list") and text.lstrip()[:1] in ("{", "["):
        return None
    where = f"{item.name}.{spec.name}"
    forced = spec.data.format if spec.data else None
    protocol, path = split_uri(text)
    if protocol == "file" and Path(path).is_dir() and spec.type_key not in FOLDER_TYPE_KEYS:
        raise TargetError(
            f"input is a directory, not a file: {where} = {text!r} (from {source}; looked at {path})",
            hint=f"pass the path of a file with --set {where}=PATH",
        )
    try:
        if check_folder_uri(text, spec.type_key, spec.data):
            return None  # a folder of part files (marker and parts checked, nothing read)
        format_for_uri(text, forced)
        target = input_target(spec, value)
    except DbndError as exc:
        exc.__suppress_context__ = True
        raise exc.add_context(f"{where} = {text!r} (from {source})", task=item.name, parameter=spec.name, uri=text)
    if protocol == "file" and not Path(path).exists():
        raise TargetError(
            f"input file not found: {where} = {text!r} (from {source}; looked at {path})",
            hint=f"check the path, or pass another with --set {where}=PATH",
        )
    return target


def check_remote_inputs(obj: Any, inputs: Mapping[str, Target], config: DbndConfig) -> None:
    """The root call's remote data inputs exist and are readable with the run's credentials.

    Checked once the run's storage is resolved (a storage block's credentials are registered then) and
    before Prefect is entered, so that a missing object or bucket, refused credentials or an unreachable
    store is one DbndError (exit code 2), not a failed task. One metadata request each.
    """
    for key, target in inputs.items():
        if target.protocol == "file":  # local files: checked above
            continue
        try:
            target.info()
        except DbndError as exc:
            exc.__suppress_context__ = True
            where = f"{obj.name}.{key} = {target.uri!r} (from {source_of(config, obj.name, key)})"
            raise exc.add_context(where, task=obj.name, parameter=key, uri=target.uri)


__all__ = ["RESERVED_TASK_KEYS", "checked_root", "check_task_keys", "check_input", "check_remote_inputs",
           "source_of"]
