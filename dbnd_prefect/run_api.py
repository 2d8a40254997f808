"""Running a task or pipeline with configuration, from Python and for `dbnd run`.

    from dbnd_prefect.run_api import run
    result = run("prepare_data", set={"raw_data": "data/raw.csv"}, env="local")
    train, validation = result.values
    result.outputs("prepare_data")          # {"result_1": DataFrame, "result_2": DataFrame}

`set` and `override` take `{"task.param": value}` (a key without a dot goes to the root task) or
`{"task": {"param": value}}`; they are the `--set` and `--override` layers of the precedence rule
in `dbnd_prefect.cli`. Everything is checked before Prefect is entered (`prepare_run`), so a
mistake is one DbndError naming the culprit and nothing is run or written. A task that fails at
run time raises TaskFailedError naming the task, chained to the task's own exception.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from dbnd_prefect.config import (
    DbndConfig,
    config_context,
    context_config,
    run_settings,
    task_values,
)
from dbnd_prefect.config.loader import read_layers, with_command_line
from dbnd_prefect.config.model import RESERVED_SECTIONS
from dbnd_prefect.errors import (
    ConfigError,
    DbndError,
    ParameterError,
    TargetError,
    TaskFailedError,
    is_input_error,
    suggest,
)

RESERVED_TASK_KEYS = ("task_version",)


@dataclasses.dataclass
class PreparedRun:
    """A validated run request: what to run and the configuration it runs with."""

    obj: Any
    config: DbndConfig


@dataclasses.dataclass
class RunResult:
    """What a finished run returned and where its outputs are."""

    values: Any
    run: Any
    task: Any = None  # the task or pipeline that was run

    @property
    def task_outputs(self) -> dict[str, dict[str, str]]:
        """Where each task of the run wrote its outputs: `{task: {output: uri}}` (its last call)."""
        return {e["task"]: dict(e.get("outputs", {})) for e in self.run.task_runs}

    def load(self, name: str) -> Any:
        """One output, loaded: a name the run's task or pipeline gives its outputs (`result=`), or `TASK.OUTPUT`.

        A task's outputs are read from where they were written; a pipeline's named results are the
        values it returned.
        """
        root = self.task
        pipeline_names = getattr(root, "result_names", None)
        if pipeline_names and name in pipeline_names:
            values = self.values if len(pipeline_names) > 1 else (self.values,)
            return values[pipeline_names.index(name)]
        task_name, dot, output = name.rpartition(".")
        if not dot and root is not None and hasattr(root, "outputs"):
            task_name, output = root.name, name
        if task_name:
            loaded = load_task_outputs(self.run, task_name)
            if output in loaded:
                return loaded[output]
        known = [*(pipeline_names or []), *(f"{t}.{o}" for t, outs in self.task_outputs.items() for o in outs)]
        if root is not None and hasattr(root, "outputs"):
            known = [o.name for o in root.outputs] + known
        raise DbndError(f"no output '{name}' in this run{suggest(name, known)}",
                        hint=f"outputs: {', '.join(known) or 'none'}")

    def task_run(self, task_name: str) -> dict[str, Any]:
        """The summary entry of the last run of `task_name` in this run (see `RunContext.task_runs`)."""
        return task_run_entry(self.run, task_name)

    def outputs(self, task_name: str) -> dict[str, Any]:
        """The outputs of the last run of `task_name` in this run, loaded from where they were written."""
        return load_task_outputs(self.run, task_name)


def run(
    task: Any,
    set: Mapping[str, Any] | None = None,  # noqa: A002 - mirrors --set
    override: Mapping[str, Any] | None = None,
    env: str | None = None,
    conf_files: Sequence[str | os.PathLike[str]] = (),
    task_version: str | None = None,
    modules: Sequence[str] = (),
) -> RunResult:
    """Run `task` (a @task/@pipeline object or a name as `dbnd run` takes it) with configuration.

    Layers as for `dbnd run`: project files of the working directory < `conf_files` <
    DBND__ variables < `set` < call-site arguments < `override`. `env` selects an environment
    profile, `task_version="now"` forces recomputation. Raises DbndError before running anything
    when the request is invalid, TaskFailedError when a task fails.
    """
    prepared = prepare_run(task, [set] if set else [], [override] if override else [], env=env,
                           conf_files=conf_files, task_version=task_version, modules=modules)
    return execute(prepared)


def prepare_run(
    task: Any,
    set_values: Iterable[Mapping[str, Any]] = (),
    override_values: Iterable[Mapping[str, Any]] = (),
    *,
    env: str | None = None,
    conf_files: Sequence[str | os.PathLike[str]] = (),
    task_version: str | None = None,
    modules: Sequence[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    check: bool = True,
) -> PreparedRun:
    """Find the task, build its configuration and check everything; nothing runs or is written.

    `set_values`/`override_values` are parsed `--set`/`--override` mappings; keys without a dot
    go to the root task. Raises DbndError (exit code 2) for any mistake. `check=False` skips the
    checks of parameter values and input files (for `dbnd run TASK --help`).
    """
    from dbnd_prefect.discovery import find_task

    set_values, override_values = list(set_values), list(override_values)
    # inside `with config_context(...)` the run starts from that config, as a direct call does
    in_context = context_config() if cwd is None and environ is None else None
    files = read_layers(cwd, conf_files, environ, over=in_context)
    if isinstance(task, str):
        # the modules to search may come from --set run.modules=...; bare parameter names need the task
        dotted = [_dotted_only(m) for m in set_values], [_dotted_only(m) for m in override_values]
        probe = _with_flags(with_command_line(files, *dotted), env, task_version)
        obj = find_task(task, [*run_settings(probe).modules, *modules], cwd)
    else:
        obj = task
        if not hasattr(obj, "params") or not hasattr(obj, "bind"):
            raise ConfigError(f"{task!r} is not a @task or @pipeline", hint="decorate it or pass its name")
    config = _with_flags(with_command_line(files, [_to_root(obj, m, "--set") for m in set_values],
                                           [_to_root(obj, m, "--override") for m in override_values]),
                         env, task_version)
    if check:
        validate(obj, config)
    return PreparedRun(obj, config)


def build_config(
    cwd: str | os.PathLike[str] | None = None,
    conf_files: Sequence[str | os.PathLike[str]] = (),
    set_values: Iterable[str | Mapping[str, Any]] = (),
    override_values: Iterable[str | Mapping[str, Any]] = (),
    *,
    environ: Mapping[str, str] | None = None,
    env: str | None = None,
    task_version: str | None = None,
) -> DbndConfig:
    """`load_config` plus the `--env` and `--task-version` flags (set layer), validated."""
    files = read_layers(cwd, conf_files, environ)
    return _with_flags(with_command_line(files, set_values, override_values), env, task_version)


def _with_flags(config: DbndConfig, env: str | None, task_version: str | None) -> DbndConfig:
    """`config` with the `--env` and `--task-version` flags (set layer, after every --set), validated."""
    if env is not None:
        config = config.with_layer("set", {"run": {"env": env}}, f"--env {env}")
    if task_version is not None:
        config = config.with_layer("set", {"run": {"task_version": str(task_version)}},
                                   f"--task-version {task_version}")
    run_settings(config)
    return config


def _dotted_only(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if "." in k or isinstance(v, Mapping)}


def _to_root(obj: Any, mapping: Mapping[str, Any], flag: str) -> dict[str, Any]:
    """`{"raw_data": x}` -> `{"prepare_data.raw_data": x}` when prepare_data is the root task."""
    mapped: dict[str, Any] = {}
    for key, value in mapping.items():
        if "." in key or isinstance(value, Mapping):
            mapped[key] = value
        elif key in obj.param_map or key in RESERVED_TASK_KEYS:
            mapped[f"{obj.name}.{key}"] = value
        else:
            names = [p.name for p in obj.params]
            raise ParameterError(
                f"unknown parameter '{key}' of {obj.name} in {flag} {key}=...{suggest(key, names)}",
                hint=f"parameters of {obj.name}: {', '.join(names) or 'none'}",
            )
    return mapped


def data_root_of(config: DbndConfig) -> str:
    """The data root URI a run with `config` would use, creating nothing when it is a plain path or URI."""
    from dbnd_prefect.storage import resolve_storage
    from dbnd_prefect.targets import normalize_uri

    settings = run_settings(config)
    if settings.storage_block:
        return resolve_storage(settings.data_root, settings.storage_block, settings.api).data_root
    return normalize_uri(settings.data_root)


class ConfigView:
    """The part of a RunContext that `bind` reads, over a config: for checking without a run."""

    def __init__(self, config: DbndConfig) -> None:
        self.config = config
        self.env = run_settings(config).env

    @functools.cached_property
    def data_root(self) -> str:
        """Where version selectors (`TASK.OUTPUT@latest`) are looked up; found only when one is used."""
        return data_root_of(self.config)

    def task_section(self, task_name: str) -> dict[str, Any]:
        return task_values(self.config, task_name)

    def overrides_for(self, task_name: str) -> dict[str, Any]:
        return self.config.overrides_for(task_name)


def validate(obj: Any, config: DbndConfig) -> None:
    """Check a run of `obj` with `config` before anything runs: task sections, values, input files."""
    from dbnd_prefect import task_registry
    from dbnd_prefect.history.selectors import is_selector

    items = task_registry.all_items()
    items[obj.name] = obj  # the one being run, also when other modules define its name
    _check_sections(config, items)
    for name, item in items.items():
        _check_task_keys(config, name, [p.name for p in item.params])
        for key, found in task_values(config, name).items():
            spec = item.param_map.get(key)
            if spec is not None:
                _coerce_checked(item, spec, found)
    view = ConfigView(config)
    for name, item in items.items():  # typed values first, so that a mistake is reported with its source
        for key, found in task_values(config, name).items():
            spec = item.param_map.get(key)
            if spec is not None and spec.is_data and (found.layer in ("set", "override") or is_selector(found.value)):
                _check_input(item, spec, _resolved(found.value, view, f"{name}.{key}", found.source), found.source)
    for key, value in obj.bind((), {}, view).items():  # bind resolves version selectors
        _check_input(obj, obj.param_map[key], value, _source_of(config, obj.name, key))


def _check_task_keys(config: DbndConfig, task_name: str, params: list[str]) -> None:
    """Like `check_task_section`, letting the reserved keys (`task_version`) through."""
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


def _resolved(value: Any, view: ConfigView, where: str, source: str) -> Any:
    """A version selector's stored URI (ParameterError naming `where` when nothing is stored); else `value`."""
    from dbnd_prefect.history.selectors import is_selector, resolve_selector

    if not is_selector(value):
        return value
    try:
        return resolve_selector(value, view.data_root, view.env)
    except ParameterError as exc:
        exc.__suppress_context__ = True
        task, _, parameter = where.partition(".")
        raise exc.add_context(f"{where} (from {source})", task=task, parameter=parameter, uri=str(value))


def _coerce_checked(item: Any, spec: Any, found: Any) -> Any:
    from dbnd_prefect.params import coerce

    try:
        return coerce(item.name, spec, found.value)
    except ParameterError as exc:
        raise ParameterError(f"{exc.message} at {found.source}", hint=exc.hint) from None


def _source_of(config: DbndConfig, task_name: str, key: str) -> str:
    found = config.overrides_for(task_name).get(key) or task_values(config, task_name).get(key)
    return found.source if found is not None else "the parameter's default"


def _check_input(item: Any, spec: Any, value: Any, source: str) -> None:
    """A path given to a data parameter must have a known format and, if local, exist."""
    if not spec.is_data or spec.type_key in ("pathlib.Path", "dbnd_prefect.Target"):
        return
    if not isinstance(value, (str, os.PathLike)):
        return
    text = os.fspath(value)
    if spec.type_key in ("dict", "list") and text.lstrip()[:1] in ("{", "["):
        return
    from dbnd_prefect.targets import Target, format_for_uri, split_uri
    from dbnd_prefect.targets.folder import FOLDER_TYPE_KEYS, check_folder_input

    where = f"{item.name}.{spec.name}"
    forced = spec.data.format if spec.data else None
    protocol, path = split_uri(text)
    if protocol == "file" and Path(path).is_dir() and spec.type_key not in FOLDER_TYPE_KEYS:
        raise TargetError(
            f"input is a directory, not a file: {where} = {text!r} (from {source}; looked at {path})",
            hint=f"pass the path of a file with --set {where}=PATH",
        )
    try:
        if check_folder_input(text, spec.type_key, spec.data):
            return  # a folder of part files (marker and parts checked, nothing read)
        format_for_uri(text, forced)
        Target(text, format=forced)
    except DbndError as exc:
        exc.__suppress_context__ = True
        raise exc.add_context(f"{where} = {text!r} (from {source})", task=item.name, parameter=spec.name, uri=text)
    if protocol == "file" and not Path(path).exists():
        raise TargetError(
            f"input file not found: {where} = {text!r} (from {source}; looked at {path})",
            hint=f"check the path, or pass another with --set {where}=PATH",
        )


def execute(prepared: PreparedRun, command_line: list[str] | None = None) -> RunResult:
    """Run a prepared request on Prefect; TaskFailedError (exit code 1) names the task that failed.

    Bad input data found only when a task loads it stays the DbndError that names the task, the
    parameter and the URI (exit code 2): an input error, not a failing task.
    """
    from dbnd_prefect.run_profile import check_run_profile
    from dbnd_prefect.run_context import ensure_run

    obj = prepared.obj
    with config_context(prepared.config), ensure_run(prepared.config) as current:
        current.command_line = command_line
        check_remote_inputs(obj, current)
        check_run_profile(prepared.config, obj, current)  # remote work with data on this machine: refused here
        try:
            values = obj()
        except DbndError as exc:
            if isinstance(exc, TaskFailedError) or is_input_error(exc):
                raise  # bad input data found while a task loaded it: an input error, not a failing task
            raise _failed(obj, exc) from exc
        except Exception as exc:
            raise _failed(obj, exc) from exc
    return RunResult(values, current, prepared.obj)


def check_remote_inputs(obj: Any, run: Any) -> None:
    """The root task's remote data inputs exist and are readable with the run's credentials.

    Checked once the run's storage is resolved (a storage block's credentials are registered then)
    and before Prefect is entered, so that a missing object or bucket, refused credentials or an
    unreachable store is one DbndError (exit code 2), not a failed task. One metadata request each.
    """
    from dbnd_prefect.targets import Target, split_uri

    for key, value in obj.bind((), {}, run).items():
        spec = obj.param_map[key]
        if not spec.is_data or spec.type_key in ("pathlib.Path", "dbnd_prefect.Target"):
            continue
        text = value.uri if isinstance(value, Target) else value
        if not isinstance(text, str) or split_uri(text)[0] == "file":  # local files: checked by `validate`
            continue
        try:
            Target(text).info()
        except DbndError as exc:
            exc.__suppress_context__ = True
            where = f"{obj.name}.{key} = {text!r} (from {_source_of(run.config, obj.name, key)})"
            raise exc.add_context(where, task=obj.name, parameter=key, uri=text)


def _failed(obj: Any, exc: BaseException) -> TaskFailedError:
    from dbnd_prefect.redaction import one_line

    name, kind = failing_task(obj, exc)
    detail = exc.message if isinstance(exc, DbndError) else f"{type(exc).__name__}: {one_line(exc, 2000)}"
    error = TaskFailedError(f"{kind} '{name}' failed: {detail}", hint="run with --verbose for the traceback")
    error.task_name = name  # type: ignore[attr-defined]
    return error


def failing_task(root: Any, exc: BaseException) -> tuple[str, str]:
    """(name, "task"/"pipeline") of the deepest task function on the exception's traceback."""
    from dbnd_prefect import task_registry
    from dbnd_prefect.discovery import kind_of

    codes = {getattr(item.func, "__code__", None): item for item in task_registry.all_items().values()}
    if root is not None:
        codes.setdefault(getattr(root.func, "__code__", None), root)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        item = codes.get(tb.tb_frame.f_code)
        if item is not None:
            found = item
        tb = tb.tb_next
    found = found or root
    return (found.name, kind_of(found)) if found is not None else ("(unknown)", "task")


def task_run_entry(run_context: Any, task_name: str) -> dict[str, Any]:
    """The last `task_runs` entry of `task_name`; DbndError listing the tasks that ran when absent."""
    entries = [e for e in run_context.task_runs if e.get("task") == task_name]
    if not entries:
        ran = sorted({e.get("task") for e in run_context.task_runs})
        raise DbndError(f"task '{task_name}' did not run in run {run_context.run_uid}{suggest(task_name, ran)}",
                        hint=f"tasks in that run: {', '.join(ran) or 'none'}")
    return entries[-1]


def load_task_outputs(run_context: Any, task_name: str) -> dict[str, Any]:
    """The outputs of `task_name`'s last run in `run_context`, by name, loaded from their files."""
    from dbnd_prefect import task_registry
    from dbnd_prefect.targets import Target

    entry = task_run_entry(run_context, task_name)
    manifest_uri = entry.get("manifest")
    if not manifest_uri:
        raise DbndError(f"task '{task_name}' finished as {entry.get('state')} with no stored outputs",
                        hint="only completed task runs have outputs")
    manifest = Target(manifest_uri, format="json").load("dict")
    task = task_registry.all_items().get(task_name)
    values: dict[str, Any] = {o.name: None for o in getattr(task, "outputs", [])}  # None outputs are not stored
    for name, info in manifest.get("outputs", {}).items():
        values[name] = Target(info["uri"], format=info.get("format")).load(info.get("type_key"))
    return values


__all__ = ["run", "RunResult", "PreparedRun", "prepare_run", "build_config", "execute", "validate", "load_task_outputs",
           "data_root_of", "failing_task"]
