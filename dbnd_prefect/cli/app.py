"""The `dbnd` commands, their options and help texts, declared for cyclopts.

Each command function only names its arguments and hands them to `dbnd_prefect.cli.commands`, which
calls the library and prints the result. Nothing here imports Prefect, pandas or pyarrow, so that
`dbnd --help` and `dbnd --version` stay fast.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from cyclopts import App, Parameter

from dbnd_prefect import __version__

PRECEDENCE_EPILOG = ("precedence: --override > call-site argument > --set > DBND__ env > --conf-file > "
                     "project files > default (see `python -m pydoc dbnd_prefect.cli`)")
TASK_HELP = "name, pkg.mod.func or path/to/file.py:func"


@Parameter(name="*")
@dataclasses.dataclass(frozen=True)
class ConfigOptions:
    """The configuration options every command that reads configuration takes."""

    set_values: Annotated[tuple[str, ...], Parameter(
        name="--set", metavar="KEY=VALUE",
        help="a configuration value: TASK.PARAM=VALUE, PARAM=VALUE for TASK itself, or JSON '{\"task.param\": 1}' "
             "(repeatable, later beats earlier; fills what the caller did not pass)")] = ()
    override_values: Annotated[tuple[str, ...], Parameter(
        name="--override", metavar="KEY=VALUE",
        help="like --set, but beats even arguments the pipeline passes explicitly")] = ()
    env: Annotated[str | None, Parameter(
        name="--env", metavar="NAME", help="environment profile ([env.NAME] tables; default local)")] = None
    conf_files: Annotated[tuple[str, ...], Parameter(
        name="--conf-file", metavar="PATH", help="a TOML configuration file (repeatable; later beats earlier)")] = ()
    modules: Annotated[tuple[str, ...], Parameter(
        name=["--module", "-m"], metavar="MODULE",
        help="import MODULE to find tasks (repeatable; adds to [run] modules)")] = ()
    task_target_date: Annotated[str | None, Parameter(
        name="--task-target-date", metavar="YYYY-MM-DD",
        help="the date the data is for: part of every signature and output path (run.task_target_date); "
             "`dbnd plan` and `dbnd backfill` take a range START..END")] = None
    verbose: Annotated[bool, Parameter(name="--verbose", help="tracebacks and debug logs")] = False


TaskVersion = Annotated[str | None, Parameter(name="--task-version", metavar="V",
                                              help="version of every task (`now` forces recomputation)")]
Argv = Annotated[tuple[str, ...], Parameter(parse=False)]  # the command line, supplied by `main`

app = App(
    name="dbnd",
    help="DBND-style tasks and pipelines on Prefect.",
    help_epilogue=PRECEDENCE_EPILOG,
    version=f"dbnd-prefect {__version__}",
    version_format="plaintext",
    help_format="plaintext",
    default_parameter=Parameter(negative=(), show_default=False),  # no --no-describe / --empty-set variants
)


@app.command
def run(task: Annotated[str | None, Parameter(name="TASK", help=TASK_HELP)] = None, /, *,
        options: ConfigOptions = ConfigOptions(),
        task_version: TaskVersion = None,
        describe: Annotated[bool, Parameter(
            name="--describe", help="print the task graph with resolved parameters and output targets; "
                                    "run nothing")] = False,
        show_help: Annotated[bool, Parameter(name=["--help", "-h"],
                                             help="show this help, or TASK's parameters")] = False,
        argv: Argv = ()) -> int:
    """Run a task or pipeline. With TASK, --help lists its parameters."""
    from dbnd_prefect.cli import commands

    if task is None and show_help:
        app.help_print(["run"])
        return 0
    return commands.run_command(task, options, task_version=task_version, describe=describe,
                                show_help=show_help, argv=argv)


@app.command
def plan(task: Annotated[str, Parameter(name="TASK", help=TASK_HELP)], /, *,
         options: ConfigOptions = ConfigOptions(), task_version: TaskVersion = None) -> int:
    """What a run would reuse or recompute, and why; run nothing.

    A dry run: per task, hit (stored outputs verify and would be reused), stale (stored outputs are gone
    or changed) or miss (never ran with these inputs, parameters and code), and why. Nothing runs.
    """
    from dbnd_prefect.cli import commands

    return commands.plan_command(task, options, task_version=task_version)


@app.command
def versions(task: Annotated[str, Parameter(name="TASK", help="task name (or pkg.mod.func)")],
             output: Annotated[str | None, Parameter(name="OUTPUT", help="one output of TASK, e.g. result")] = None,
             /, *, options: ConfigOptions = ConfigOptions()) -> int:
    """Stored versions of a task's outputs, newest first.

    The stored versions of TASK's outputs (of OUTPUT only, when given) in the data root and environment:
    when, signature, flow run, size and parameters. Pick one for a data parameter with
    --set TASK.PARAM=TASK.OUTPUT@latest or TASK.OUTPUT@run:FLOW_RUN_ID.
    """
    from dbnd_prefect.cli import commands

    return commands.versions_command(task, output, options)


@app.command
def reproduce(run_id: Annotated[str, Parameter(name="RUN_ID", help="Prefect flow run id (a prefix will do), as "
                                                                  "shown by `dbnd versions TASK`")], /, *,
              options: ConfigOptions = ConfigOptions()) -> int:
    """Re-run a recorded run and compare output checksums.

    Re-run every task recorded for Prefect flow run RUN_ID with exactly its recorded inputs and
    parameters, and say per output whether the new checksum matches. Exit 0 when all match, else 1.
    """
    from dbnd_prefect.cli import commands

    return commands.reproduce_command(run_id, options)


@app.command(name="show-tasks")
def show_tasks(*, options: ConfigOptions = ConfigOptions()) -> int:
    """List discoverable tasks and pipelines."""
    from dbnd_prefect.cli import commands

    return commands.show_tasks(options)


@app.command(name="show-config")
def show_config(*, options: ConfigOptions = ConfigOptions()) -> int:
    """Print the configuration with its sources."""
    from dbnd_prefect.cli import commands

    return commands.show_config(options)


@app.command(name="show-env")
def show_env(name: Annotated[str | None, Parameter(name="NAME", help="profile name (default: the active one)")] = None,
             /, *, options: ConfigOptions = ConfigOptions()) -> int:
    """Print an environment profile with the source of each value."""
    from dbnd_prefect.cli.env_command import show_env_command

    return show_env_command(name, options)


@app.command
def deploy(pipelines: Annotated[tuple[str, ...], Parameter(name="PIPELINE", help=TASK_HELP)] = (), /, *,
           options: ConfigOptions = ConfigOptions(),
           name: Annotated[str | None, Parameter(name="--name", help="deployment name (default: "
                                                                      "PIPELINE-ENV)")] = None,
           params: Annotated[tuple[str, ...], Parameter(name="--param", metavar="KEY=VALUE", help=(
               "a deployment parameter: the pipeline's own or TASK.PARAM (repeatable)"))] = (),
           cron: Annotated[str | None, Parameter(name="--cron", metavar="EXPR", help="schedule, UTC")] = None,
           interval: Annotated[float | None, Parameter(name="--interval", metavar="SECONDS",
                                                       help="schedule every SECONDS")] = None,
           prefect_file: Annotated[str, Parameter(name="--prefect-file", metavar="PATH")] = "prefect.yaml",
           write_only: Annotated[bool, Parameter(name="--write-only", help="write prefect.yaml; deploy "
                                                                            "nothing")] = False) -> int:
    """Create or update deployments of pipelines on the work pool of an environment profile (--env).

    Writes one prefect.yaml entry per pipeline (so `prefect deploy --all` keeps working) and applies it
    with `prefect deploy`. Local input files are uploaded to the data root of a profile that runs off
    this machine.
    """
    from dbnd_prefect.cli.deploy_command import deploy_command

    return deploy_command(pipelines, options, name=name, params=params, cron=cron, interval=interval,
                          prefect_file=prefect_file, apply=not write_only)


@app.command
def server(action: Annotated[Literal["status", "start", "stop"], Parameter(name="ACTION")] = "status", /, *,
           verbose: Annotated[bool, Parameter(name="--verbose", help="tracebacks and debug logs")] = False) -> int:
    """The local Prefect server that runs share: status, start, stop.

    With run.api unset (or 'local') and no PREFECT_API_URL, the first run starts a Prefect server in the
    background for PREFECT_HOME on 127.0.0.1 and later runs reuse it (and its UI).
    """
    from dbnd_prefect.cli.server import server_command

    return server_command(action)


config_app = App(name="config", help="Configuration commands.")
app.command(config_app)


@config_app.default
def config_without_subcommand() -> int:
    from dbnd_prefect.errors import ConfigError

    raise ConfigError("dbnd config: missing SUBCOMMAND", hint="use dbnd config explain KEY")


@config_app.command
def explain(key: Annotated[str, Parameter(name="KEY", help="SECTION.KEY, e.g. prepare_data.raw_data or "
                                                           "run.data_root")], /, *,
            options: ConfigOptions = ConfigOptions()) -> int:
    """Where a configuration value comes from."""
    from dbnd_prefect.cli import commands

    return commands.explain(key, options)
from dbnd_prefect.cli.lifecycle import register as _register_lifecycle; _register_lifecycle(app)  # noqa: E402
from dbnd_prefect.cli.backfill_command import register as _register_backfill; _register_backfill(app, ConfigOptions)  # noqa: E402
