"""The `dbnd` command line.

    dbnd run TASK [--set K=V]... [--override K=V]... [--env NAME] [--conf-file PATH]...
                  [--task-version V] [--describe] [--verbose] [-m MODULE]...
    dbnd run TASK --help          the task's parameters: type, default, configured value and its source
    dbnd plan TASK [--set K=V]... per task: hit / miss / stale and why; nothing runs (= dbnd run --describe)
    dbnd versions TASK [OUTPUT]   stored versions of TASK's outputs: time, signature, flow run, size, parameters
    dbnd reproduce RUN_ID         re-run a recorded flow run's tasks; exit 0 when every output checksum matches
    dbnd show-tasks               discoverable tasks and pipelines with their signatures
    dbnd show-config              every configured value with the layer and file/line that set it
    dbnd config explain KEY       one value, where it came from and what it overrode
    dbnd server [status|start|stop]  the local Prefect server that runs share (see run.api)

TASK is a name from the modules listed in `[run] modules` or given with `-m`, a dotted path
`pkg.mod.func`, or `path/to/file.py:func`. `--set task.param=value` (or JSON:
`--set '{"task.param": 1}'`); a key without a dot names a parameter of TASK itself. A data
parameter also takes a stored version: `--set train_model.training_set=split_data.training_set@latest`
or `...@run:FLOW_RUN_ID` (see `dbnd versions split_data`).

Where a parameter's value comes from — the precedence rule, highest first:

    --override TASK.PARAM=V     beats everything, even an argument the pipeline passes explicitly
    call-site argument          what the calling code passes explicitly (`train_model(data, alpha=0.1)`)
    --set TASK.PARAM=V          fills only what the caller did not pass (later --set beats earlier)
    DBND__TASK__PARAM=V         environment variables
    --conf-file PATH            TOML files, later beats earlier
    project configuration       dbnd.toml, then [tool.dbnd] in pyproject.toml (nearest directory up)
    parameter default           the default in the function signature (then library defaults)

So `--set` is a default you give from outside (the DBND rule: explicit code wins), and
`--override` is how you force a value the code passes. `dbnd config explain TASK.PARAM` shows
which layer won. Input mistakes exit with code 2 and one line on stderr before anything runs;
bad input data found only when a task loads it (a file that does not parse, an empty file, a
directory) also exits with code 2, naming the task, the parameter and the URI; a task whose own
code fails exits with code 1 and names the task. `--verbose` adds tracebacks and Prefect's own
failure reports.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Sequence

from dbnd_prefect.errors import ConfigError, DbndError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one ConfigError line instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}", hint=f"see {self.prog} --help")


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="set_values", action="append", default=[], metavar="KEY=VALUE",
                        help="a configuration value: TASK.PARAM=VALUE, PARAM=VALUE for TASK itself, or JSON "
                             "'{\"task.param\": 1}' (repeatable; fills what the caller did not pass)")
    parser.add_argument("--override", dest="override_values", action="append", default=[], metavar="KEY=VALUE",
                        help="like --set, but beats even arguments the pipeline passes explicitly")
    parser.add_argument("--env", metavar="NAME", help="environment profile ([env.NAME] tables; default local)")
    parser.add_argument("--conf-file", dest="conf_files", action="append", default=[], metavar="PATH",
                        help="a TOML configuration file (repeatable; later beats earlier)")
    parser.add_argument("-m", "--module", dest="modules", action="append", default=[], metavar="MODULE",
                        help="import MODULE to find tasks (repeatable; adds to [run] modules)")
    parser.add_argument("--verbose", action="store_true", help="tracebacks and debug logs")


def build_parser() -> argparse.ArgumentParser:
    """The `dbnd` argument parser."""
    parser = _Parser(prog="dbnd", description="DBND-style tasks and pipelines on Prefect.",
                     epilog="precedence: --override > call-site argument > --set > DBND__ env > --conf-file > "
                            "project files > default (see `python -m pydoc dbnd_prefect.cli`)")
    parser.add_argument("--version", action="version", version=f"dbnd-prefect {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", add_help=False, help="run a task or pipeline",
                              description="Run a task or pipeline. With TASK, --help lists its parameters.")
    run.add_argument("task", nargs="?", metavar="TASK", help="name, pkg.mod.func or path/to/file.py:func")
    run.add_argument("-h", "--help", action="store_true", help="show this help, or TASK's parameters")
    _config_options(run)
    run.add_argument("--task-version", metavar="V", help="version of every task (`now` forces recomputation)")
    run.add_argument("--describe", action="store_true",
                     help="print the task graph with resolved parameters and output targets; run nothing")

    plan = commands.add_parser("plan", help="what a run would reuse or recompute, and why; run nothing",
                               description="A dry run: per task, hit (stored outputs verify and would be reused), "
                                           "stale (stored outputs are gone or changed) or miss (never ran with "
                                           "these inputs, parameters and code), and why. Nothing runs.")
    plan.add_argument("task", metavar="TASK", help="name, pkg.mod.func or path/to/file.py:func")
    _config_options(plan)
    plan.add_argument("--task-version", metavar="V", help="version of every task (`now` forces recomputation)")

    versions = commands.add_parser("versions", help="stored versions of a task's outputs, newest first",
                                   description="The stored versions of TASK's outputs (of OUTPUT only, when given) "
                                               "in the data root and environment: when, signature, flow run, size "
                                               "and parameters. Pick one for a data parameter with "
                                               "--set TASK.PARAM=TASK.OUTPUT@latest or TASK.OUTPUT@run:FLOW_RUN_ID.")
    versions.add_argument("task", metavar="TASK", help="task name (or pkg.mod.func)")
    versions.add_argument("output", nargs="?", metavar="OUTPUT", help="one output of TASK, e.g. result")
    _config_options(versions)

    reproduce = commands.add_parser("reproduce", help="re-run a recorded run and compare output checksums",
                                    description="Re-run every task recorded for Prefect flow run RUN_ID with "
                                                "exactly its recorded inputs and parameters, and say per output "
                                                "whether the new checksum matches. Exit 0 when all match, else 1.")
    reproduce.add_argument("run_id", metavar="RUN_ID", help="Prefect flow run id (a prefix will do), as shown by "
                                                            "`dbnd versions TASK`")
    _config_options(reproduce)

    show_tasks = commands.add_parser("show-tasks", help="list discoverable tasks and pipelines")
    _config_options(show_tasks)
    show_config = commands.add_parser("show-config", help="print the configuration with its sources")
    _config_options(show_config)

    server = commands.add_parser("server", help="the local Prefect server that runs share: status, start, stop",
                                 description="With run.api unset (or 'local') and no PREFECT_API_URL, the first run "
                                             "starts a Prefect server in the background for PREFECT_HOME on "
                                             "127.0.0.1 and later runs reuse it (and its UI).")
    server.add_argument("action", nargs="?", choices=("status", "start", "stop"), default="status")
    server.add_argument("--verbose", action="store_true", help="tracebacks and debug logs")

    config = commands.add_parser("config", help="configuration commands")
    config_commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", parser_class=_Parser)
    explain = config_commands.add_parser("explain", help="where a configuration value comes from")
    explain.add_argument("key", metavar="KEY", help="SECTION.KEY, e.g. prepare_data.raw_data or run.data_root")
    _config_options(explain)
    return parser


def _version() -> str:
    from dbnd_prefect import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run `dbnd` with `argv` (default: the process arguments); the exit code."""
    from dbnd_prefect.prefect_quiet import quiet_server_settings

    argv_given = argv
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    quiet_server_settings()  # before any Prefect server this process may start
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        if getattr(args, "verbose", False):
            logging.getLogger("prefect").setLevel(logging.DEBUG)
            logging.getLogger("dbnd_prefect").setLevel(logging.DEBUG)
        from dbnd_prefect.cli import commands

        return commands.dispatch(parser, args, argv)
    except DbndError as exc:
        if argv_given is None:
            _drain_prefect_events()  # Prefect's exit-time warnings would otherwise follow our line
        if verbose:
            traceback.print_exc()
        print(f"dbnd: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dbnd: interrupted", file=sys.stderr)
        return 130


def _drain_prefect_events() -> None:
    if "prefect.events.worker" not in sys.modules:
        return
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=5)
    except Exception:  # best effort: only the order of lines on stderr depends on it
        pass


def _one_line(text: str) -> str:
    return " ".join(text.split())
