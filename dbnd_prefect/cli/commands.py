"""What each `dbnd` command does: turn its options into calls of the library, print the result."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from dbnd_prefect.errors import ConfigError

if TYPE_CHECKING:
    from dbnd_prefect.api.run import PreparedRun
    from dbnd_prefect.cli.app import ConfigOptions
    from dbnd_prefect.config import ResolvedConfig


def _reading_definitions_only() -> None:
    """This command runs nothing: in the `dbnd` executable (which ends with it), pipelines defined from now on need
    not be Prefect flows (no Prefect import). A call in process (tests, notebooks) may run them afterwards."""
    from dbnd_prefect.cli import help_cache
    from dbnd_prefect.definitions import registry

    if help_cache.enabled:  # set by the `dbnd` executable only (cli.main)
        registry.read_definitions_only()


def parse_values(values: Sequence[str], flag: str) -> list[dict[str, str]]:
    """Parse `--set`/`--override` arguments (ConfigError naming `flag` and the expected form)."""
    from dbnd_prefect.config import parse_set

    parsed = []
    for text in values:
        try:
            parsed.append(parse_set(text))
        except ConfigError as exc:
            if flag == "--set":
                raise
            raise ConfigError(exc.message.replace("--set", flag), hint=(exc.hint or "").replace("--set", flag)) \
                from None
    return parsed


def _set_values(options: ConfigOptions) -> list[dict[str, Any]]:
    """The parsed --set values, with --task-target-date as the last of them."""
    values = parse_values(options.set_values, "--set")
    if options.task_target_date is not None:
        if ".." in options.task_target_date:
            raise ConfigError(f"--task-target-date {options.task_target_date}: a range is for `dbnd backfill` "
                              "and `dbnd plan`; this command takes one date",
                              hint=f"dbnd backfill TASK --task-target-date {options.task_target_date}")
        values.append({"run.task_target_date": options.task_target_date})
    return values


def _config(options: ConfigOptions, task_version: str | None = None) -> ResolvedConfig:
    """The configuration of a command that runs no single TASK (--set keys must name their task), resolved."""
    from dbnd_prefect.api.run import build_config

    return build_config(Path.cwd(), options.conf_files, _set_values(options),
                        parse_values(options.override_values, "--override"), env=options.env,
                        task_version=task_version)


def _prepare(task: str, options: ConfigOptions, task_version: str | None, check: bool = True) -> PreparedRun:
    from dbnd_prefect.api.run import prepare_run

    return prepare_run(task, _set_values(options),
                       parse_values(options.override_values, "--override"), env=options.env,
                       conf_files=options.conf_files, task_version=task_version, modules=options.modules,
                       check=check)


def run_command(task: str | None, options: ConfigOptions, *, task_version: str | None = None,
                describe: bool = False, show_help: bool = False, argv: Sequence[str] = ()) -> int:
    """`dbnd run`: the task's help, its plan (--describe), or the run and its summary."""
    from dbnd_prefect.cli import text

    parse_values(options.set_values, "--set")  # a malformed value is named before a missing TASK
    parse_values(options.override_values, "--override")
    if not task:
        raise ConfigError("dbnd run: missing TASK", hint="dbnd run TASK [--set TASK.PARAM=VALUE]...; "
                                                         "see dbnd show-tasks")
    if show_help:
        from dbnd_prefect.cli import help_cache

        shown = help_cache.lookup(argv)  # the same call before, with nothing it read changed since
        if shown is None:
            _reading_definitions_only()
            prepared = _prepare(task, options, task_version, check=False)
            shown = text.task_help(prepared.obj, prepared.config)
            help_cache.store(argv, shown, options.conf_files)
        print(shown)
        return 0
    if describe:
        _reading_definitions_only()
        show_plan(_prepare(task, options, task_version))
        return 0
    from dbnd_prefect.api.run import execute
    from dbnd_prefect.cli import output, tables
    from dbnd_prefect.cli.progress import progress_display

    prepared = _prepare(task, options, task_version)
    with _quiet_failures(options.verbose), progress_display():
        result = execute(prepared, command_line=["dbnd", *argv])
    output.show(lambda: text.run_summary(result.run), lambda: tables.run_summary(result.run))
    return 0


def _quiet_failures(verbose: bool) -> Any:
    """Prefect's console does not repeat a failure that `dbnd` reports in one line (unless --verbose)."""
    import contextlib

    if verbose:
        return contextlib.nullcontext()
    from dbnd_prefect.runtime.console import quiet_failure_reports

    return quiet_failure_reports()


def show_plan(prepared: PreparedRun) -> None:
    """Print the dry run of a prepared request, as `dbnd plan` and `dbnd run --describe` do."""
    from dbnd_prefect.api.plan import plan_call
    from dbnd_prefect.cli import output, tables, text
    from dbnd_prefect.config import config_context
    from dbnd_prefect.runtime.session import running

    with config_context(prepared.config), running(prepared.run):
        planned = plan_call(prepared.root, prepared.run)
    output.show(lambda: text.describe(prepared.obj, prepared.run, planned),
                lambda: tables.describe(prepared.obj, prepared.run, planned))


def plan_command(task: str, options: ConfigOptions, *, task_version: str | None = None) -> int:
    """`dbnd plan`: per task hit / miss / stale and why; nothing runs. With `--task-target-date START..END`,
    what a backfill of that range would reuse and run, per date."""
    _reading_definitions_only()
    if options.task_target_date is not None and ".." in options.task_target_date:
        from dbnd_prefect.api.backfill import parse_date_range, plan_dates
        from dbnd_prefect.cli import output, tables, text

        start, end = parse_date_range(options.task_target_date)
        dates = plan_dates(task, start, end, set_values=parse_values(options.set_values, "--set"),
                           override_values=parse_values(options.override_values, "--override"), env=options.env,
                           conf_files=options.conf_files, task_version=task_version, modules=options.modules)
        output.show(lambda: text.plan_by_date(dates), lambda: tables.plan_by_date(dates))
        return 0
    show_plan(_prepare(task, options, task_version))
    return 0


def versions_command(task: str, output_name: str | None, options: ConfigOptions) -> int:
    """`dbnd versions TASK [OUTPUT]`: the stored versions, newest first."""
    _reading_definitions_only()
    from dbnd_prefect.api.discovery import find_task, recorded_versions
    from dbnd_prefect.api.run import data_root_of
    from dbnd_prefect.cli import output, tables, text
    from dbnd_prefect.history.versions import list_versions

    resolved = _config(options)
    root, env = data_root_of(resolved), resolved.settings.env
    name, obj = task, None
    versions = list_versions(root, name, env) if _plain_name(name) else []
    if not versions or options.modules:  # a dotted path, a task that has not run, or -m: the task must exist
        obj = find_task(task, [*resolved.settings.modules, *options.modules], Path.cwd())
        name = obj.name
        versions = list_versions(root, name, env)
    versions = recorded_versions(name, versions, obj)  # only obj's; an error when two files' tasks share name
    if output_name is not None:
        versions = _with_output(versions, name, output_name, obj)
    output.show(lambda: text.versions_listing(name, output_name, versions, root, env),
                lambda: tables.versions_listing(name, output_name, versions, root, env))
    return 0


def _plain_name(name: str) -> bool:
    return name.replace("_", "a").replace("-", "a").isalnum()


def _with_output(versions: list[dict[str, Any]], task: str, output: str, obj: Any = None) -> list[dict[str, Any]]:
    """The versions that stored `output`; ParameterError naming the stored outputs when none did, or the
    declared outputs when nothing is stored and `obj` (the task) declares no such output."""
    from dbnd_prefect.errors import suggest
    from dbnd_prefect.errors import ParameterError

    declared = [spec.name for spec in getattr(obj, "outputs", None) or []]
    if not versions and declared and output not in declared:
        raise ParameterError(f"task '{task}' has no output '{output}'{suggest(output, declared)}",
                             hint=f"its outputs are {', '.join(declared)}")
    chosen = [v for v in versions if output in v.get("outputs", {})]
    if versions and not chosen:
        stored = sorted({name for v in versions for name in v.get("outputs", {})})
        raise ParameterError(f"task '{task}' has no stored output '{output}'{suggest(output, stored)}",
                             hint=f"its stored outputs are {', '.join(stored) or 'none'}")
    return chosen


def reproduce_command(run_id: str, options: ConfigOptions) -> int:
    """`dbnd reproduce RUN_ID`: 0 when every output's checksum matches, else 1."""
    from dbnd_prefect.cli import text
    from dbnd_prefect.api.reproduce import reproduce

    with _quiet_failures(options.verbose):
        results = reproduce(run_id, _config(options).config, modules=options.modules, cwd=Path.cwd())
    print(text.reproduce_report(run_id, results))
    return 0 if all(r.matches for r in results) else 1


def show_tasks(options: ConfigOptions) -> int:
    """`dbnd show-tasks`: the discoverable tasks and pipelines."""
    _reading_definitions_only()
    from dbnd_prefect.api.discovery import discover
    from dbnd_prefect.cli import text

    resolved = _config(options)
    items = discover([*resolved.settings.modules, *options.modules], Path.cwd())
    print(text.tasks_listing(items))
    return 0


def show_config(options: ConfigOptions) -> int:
    """`dbnd show-config`: every configured value with its layer and source."""
    _reading_definitions_only()
    from dbnd_prefect.cli import output, tables, text

    config = _config(options).config
    output.show(lambda: text.config_listing(config), lambda: tables.config_listing(config))
    return 0


def explain(key: str, options: ConfigOptions) -> int:
    """`dbnd config explain KEY`: one value, where it came from and what it overrode."""
    _reading_definitions_only()
    resolved = _config(options)
    check_explained_key(resolved, key, options.modules)
    config = resolved.config
    print(config.explain(key))
    return 0


def check_explained_key(resolved: ResolvedConfig, dotted_key: str, modules: Sequence[str] = ()) -> None:
    """ConfigError naming the closest valid name when `dotted_key` names no setting or task parameter.

    Tasks are those found in `[run] modules` and `modules` (and any already imported).
    """
    from dbnd_prefect.api.checks import RESERVED_TASK_KEYS
    from dbnd_prefect.config.model import split_key
    from dbnd_prefect.config.settings import RUN_KEYS
    from dbnd_prefect.errors import suggest
    from dbnd_prefect.api.discovery import discover

    section, key = split_key(dotted_key)
    if section.startswith("env."):
        from dbnd_prefect.config.profiles import check_profile_key

        check_profile_key(f"{section}.{key}")
        return
    if section == "run":
        if key not in RUN_KEYS or (section != "run" and key == "env"):
            raise ConfigError(f"unknown key {section}.{key}{suggest(key, RUN_KEYS)}",
                              hint=f"{section} keys: {', '.join(k for k in RUN_KEYS if section == 'run' or k != 'env')}")
        return
    if section == "formats":
        return
    items = discover([*resolved.settings.modules, *modules], Path.cwd())
    if section == "task":
        params = sorted({p.name for item in items.values() for p in item.params})
        if key not in params:
            raise ConfigError(f"no known task has a parameter '{key}' (in config explain task.{key})"
                              f"{suggest(key, params)}", hint="task.PARAM sets PARAM in every task that has it")
        return
    item = items.get(section)
    if item is None:
        names = sorted(items)
        raise ConfigError(f"unknown task '{section}' in config explain {dotted_key}{suggest(section, names)}",
                          hint=f"known tasks: {', '.join(names) or 'none'}; list a task's module in [run] modules "
                               "or give -m MODULE")
    params = [p.name for p in item.params]
    if key not in params and key not in RESERVED_TASK_KEYS:
        raise ConfigError(f"unknown parameter {section}.{key}{suggest(key, params)}",
                          hint=f"parameters of {section}: {', '.join(params) or 'none'}")
