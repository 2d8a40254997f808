"""Running a task or pipeline with configuration, from Python and for `dbnd run`.

    from dbnd_prefect import run
    result = run("prepare_data", set={"raw_data": "data/raw.csv"}, env="local")
    train, validation = result.values
    result.outputs("prepare_data")          # {"result_1": DataFrame, "result_2": DataFrame}

`set` and `override` take `{"task.param": value}` (a key without a dot goes to the root task) or
`{"task": {"param": value}}`; they are the `--set` and `--override` layers of the precedence rule in
`dbnd_prefect.config`. `prepare_run` resolves the configuration once, opens the run and binds the root
call, checking everything on the way (api/checks.py): a mistake is one DbndError naming the culprit, and
nothing is run or written. `execute` runs that bound call; a task that fails raises TaskFailedError naming
the task, chained to the task's own exception.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from dbnd_prefect.api.checks import RESERVED_TASK_KEYS, checked_root
from dbnd_prefect.api.discovery import find_task
from dbnd_prefect.api.failure import failed
from dbnd_prefect.api.results import RunResult
from dbnd_prefect.config import DbndConfig, ResolvedConfig, config_context, context_config, resolve_run_config
from dbnd_prefect.config.loader import read_layers, with_command_line
from dbnd_prefect.definitions.definition import is_definition
from dbnd_prefect.engine.calling import run_for, run_root
from dbnd_prefect.engine.profile_checks import check_profile
from dbnd_prefect.errors import ConfigError, DbndError, ParameterError, TaskFailedError, is_input_error, suggest
from dbnd_prefect.runtime.console import at_caller, quiet_repeated_reports
from dbnd_prefect.runtime.exit_hooks import RunInterrupted
from dbnd_prefect.runtime.session import connect, open_run, running

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext


@dataclasses.dataclass
class PreparedRun:
    """A checked run request: what to run, the configuration resolved once, the run and its bound root call
    (`run`/`root` are None when the checks were skipped, as for `dbnd run TASK --help`)."""

    obj: Any
    resolved: ResolvedConfig
    run: "RunContext | None" = None
    root: "BoundCall | None" = None

    @property
    def config(self) -> DbndConfig:
        return self.resolved.config


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
    when the request is invalid, TaskFailedError when a task fails; a DbndError other than TaskFailedError
    is shown from the caller's line (see `runtime.console.at_caller`). Ctrl-C or SIGTERM cancels the flow
    run and raises RunInterrupted (a KeyboardInterrupt).
    """
    __tracebackhide__ = True  # IPython and pytest show a failing call from the caller's line
    try:
        prepared = prepare_run(task, [set] if set else [], [override] if override else [], env=env,
                               conf_files=conf_files, task_version=task_version, modules=modules)
        with quiet_repeated_reports():
            return execute(prepared)
    except TaskFailedError:
        raise  # chained to the task's own exception, whose traceback is the useful one
    except (DbndError, RunInterrupted) as exc:
        raise at_caller(exc) from None  # bad input: one error, shown from the caller's line


def run_with_arguments(obj: Any, args: tuple[Any, ...], options: dict[str, Any]) -> RunResult:
    """`obj.run(*args, **options)` of a task or pipeline: `run(obj, **options)` with the positional call
    arguments as `set` values (which values given in `set` beat)."""
    if args:
        bound = obj.call_signature.bind_partial(*args).arguments
        options = {**options, "set": {**bound, **(options.get("set") or {})}}
    return run(obj, **options)


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
    """Find the task, resolve its configuration once, open its run and bind its root call; nothing runs.

    `set_values`/`override_values` are parsed `--set`/`--override` mappings; keys without a dot go to the
    root task. Raises DbndError (exit code 2) for any mistake. `check=False` stops after the configuration
    (for `dbnd run TASK --help`): no run is opened, no value or input file is checked.
    """
    set_values, override_values = list(set_values), list(override_values)
    # inside `with config_context(...)` the run starts from that config, as a direct call does
    in_context = context_config() if cwd is None and environ is None else None
    files = read_layers(cwd, conf_files, environ, over=in_context)
    probe: ResolvedConfig | None = None
    if isinstance(task, str):
        # the modules to search may come from --set run.modules=...; bare parameter names need the task
        dotted = [_dotted_only(m) for m in set_values], [_dotted_only(m) for m in override_values]
        probe = resolve_run_config(_with_flags(with_command_line(files, *dotted), env, task_version))
        obj = find_task(task, [*probe.settings.modules, *modules], cwd)
    else:
        obj = task
        if not is_definition(obj):
            raise ConfigError(f"{task!r} is not a @task or @pipeline", hint="decorate it or pass its name")
    config = _with_flags(with_command_line(files, [_to_root(obj, m, "--set") for m in set_values],
                                           [_to_root(obj, m, "--override") for m in override_values]),
                         env, task_version)
    # the root task's values are all the final config adds to the probe's: run settings, profile and
    # tracking are the same, so they are not resolved again
    resolved = dataclasses.replace(probe, config=config) if probe is not None else resolve_run_config(config)
    if not check:
        return PreparedRun(obj, resolved)
    current = open_run(resolved)
    return PreparedRun(obj, resolved, current, checked_root(obj, current, run_for(obj, current)))


def build_config(
    cwd: str | os.PathLike[str] | None = None,
    conf_files: Sequence[str | os.PathLike[str]] = (),
    set_values: Iterable[str | Mapping[str, Any]] = (),
    override_values: Iterable[str | Mapping[str, Any]] = (),
    *,
    environ: Mapping[str, str] | None = None,
    env: str | None = None,
    task_version: str | None = None,
) -> ResolvedConfig:
    """The configuration of a command that runs no single task (`--set` keys name their task), resolved and
    validated: the project files, `conf_files`, the environment, `--set`/`--override`, `--env` and
    `--task-version`."""
    files = read_layers(cwd, conf_files, environ)
    return resolve_run_config(_with_flags(with_command_line(files, set_values, override_values), env, task_version))


def _with_flags(config: DbndConfig, env: str | None, task_version: str | None) -> DbndConfig:
    """`config` with the `--env` and `--task-version` flags (set layer, after every --set)."""
    if env is not None:
        config = config.with_layer("set", {"run": {"env": env}}, f"--env {env}")
    if task_version is not None:
        config = config.with_layer("set", {"run": {"task_version": str(task_version)}},
                                   f"--task-version {task_version}")
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


def data_root_of(resolved: ResolvedConfig) -> str:
    """The data root URI a run of `resolved` would use, creating nothing when it is a plain path or URI."""
    from dbnd_prefect.runtime.prefect_api import choose_api, use_api
    from dbnd_prefect.runtime.storage import data_root_of as storage_root

    settings = resolved.settings
    return storage_root(settings, lambda: use_api(choose_api(settings.api)))


def execute(prepared: PreparedRun, command_line: list[str] | None = None) -> RunResult:
    """Run a prepared request on Prefect; TaskFailedError (exit code 1) names the task that failed.

    Bad input data found only when a task loads it stays the DbndError that names the task, the
    parameter and the URI (exit code 2): an input error, not a failing task.
    """
    if prepared.run is None or prepared.root is None:
        current = open_run(prepared.resolved)
        root = checked_root(prepared.obj, current, run_for(prepared.obj, current))
    else:
        current, root = prepared.run, prepared.root
    current.command_line = command_line
    obj = prepared.obj
    with config_context(prepared.config), running(current):
        check_profile(current, root)  # remote work with data on this machine, a missing runner: refused here
        connect(current)  # the API (the local server started or waited for): its errors are not a task's
        try:
            values = run_root(root, current)
        except DbndError as exc:
            if isinstance(exc, TaskFailedError) or is_input_error(exc):
                raise  # bad input data found while a task loaded it: an input error, not a failing task
            raise failed(obj, exc) from exc
        except Exception as exc:
            raise failed(obj, exc) from exc
    return RunResult(values, current, obj)


__all__ = ["run", "run_with_arguments", "PreparedRun", "prepare_run", "build_config", "execute", "data_root_of"]
