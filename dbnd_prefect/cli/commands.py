"""What each `dbnd` command does: parse its options into calls of the api, print the result."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from dbnd_prefect.errors import ConfigError


def dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run the command chosen in `args`; the exit code."""
    if args.command == "run":
        return run_command(parser, args, argv)
    if args.command == "show-tasks":
        return show_tasks(args)
    if args.command == "show-config":
        return show_config(args)
    if args.command == "config" and args.config_command == "explain":
        return explain(args)
    if args.command == "config":
        raise ConfigError("dbnd config: missing SUBCOMMAND", hint="use dbnd config explain KEY")
    parser.print_help()
    return 2


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


def _config(args: argparse.Namespace) -> Any:
    from dbnd_prefect.api import build_config

    return build_config(Path.cwd(), args.conf_files, parse_values(args.set_values, "--set"),
                        parse_values(args.override_values, "--override"), env=args.env,
                        task_version=getattr(args, "task_version", None))


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
    from dbnd_prefect.api import execute, prepare_run
    from dbnd_prefect.cli import text

    sets = parse_values(args.set_values, "--set")
    overrides = parse_values(args.override_values, "--override")
    if not args.task:
        if args.help:
            _run_parser(parser).print_help()
            return 0
        raise ConfigError("dbnd run: missing TASK", hint="dbnd run TASK [--set TASK.PARAM=VALUE]...; "
                                                         "see dbnd show-tasks")
    prepared = prepare_run(args.task, sets, overrides, env=args.env, conf_files=args.conf_files,
                           task_version=args.task_version, modules=args.modules, check=not args.help)
    if args.help:
        print(text.task_help(prepared.obj, prepared.config))
        return 0
    if args.describe:
        from dbnd_prefect.config import config_context
        from dbnd_prefect.planning import plan

        with config_context(prepared.config):
            planned = plan(prepared.obj)
        print(text.describe(prepared.obj, prepared.config, planned))
        return 0
    result = execute(prepared, command_line=["dbnd", *argv])
    print(text.run_summary(result.run))
    return 0


def _run_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]
    raise RuntimeError("the run command is missing from the parser")


def show_tasks(args: argparse.Namespace) -> int:
    from dbnd_prefect.cli import text
    from dbnd_prefect.config import run_settings
    from dbnd_prefect.discovery import discover

    config = _config(args)
    items = discover([*run_settings(config).modules, *args.modules], Path.cwd())
    print(text.tasks_listing(items))
    return 0


def show_config(args: argparse.Namespace) -> int:
    from dbnd_prefect.cli import text

    print(text.config_listing(_config(args)))
    return 0


def explain(args: argparse.Namespace) -> int:
    print(_config(args).explain(args.key))
    return 0
