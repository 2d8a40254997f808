"""`dbnd backfill PIPELINE --task-target-date START..END`: one run per date, then a table of how each went.

    dbnd backfill daily_report --task-target-date 2024-01-01..2024-01-31 [--max-parallel 4] [--set K=V] [--env N]

Each date runs with that date as `run.task_target_date` (and as the `task_target_date` parameter of every task
that declares one). A date whose signature already has stored outputs is reused; a failing date does not
stop the others. The end lists every date as ran, reused or failed, each failure on one line; the exit code
is 1 when any date failed, 2 for a mistake in the request (found before any date runs). The runs share the
Prefect tag `backfill:<id>`.

`register` declares the command on the `dbnd` app (called at the end of `cli/app.py`); nothing here imports
Prefect until the command runs. Not `from __future__ import annotations`: cyclopts reads the command's
annotations at run time, and the options class is the app's own, handed to `register`.
"""

import sys
from typing import Annotated, Any, Sequence

from cyclopts import Parameter

HELP = "name, pkg.mod.func or path/to/file.py:func"


def register(app: Any, options_type: type) -> None:
    """Declare `dbnd backfill` on `app`; `options_type` is the app's ConfigOptions (--set, --env...)."""

    @app.command(name="backfill")
    def backfill(pipeline: Annotated[str | None, Parameter(name="PIPELINE", help=HELP)] = None, /, *,
                 options: options_type = options_type(),  # type: ignore[valid-type]
                 task_version: Annotated[str | None, Parameter(
                     name="--task-version", metavar="V", help="version of every task (`now` recomputes every "
                                                              "date)")] = None,
                 max_parallel: Annotated[int, Parameter(
                     name="--max-parallel", metavar="N", help="run N dates at a time, in threads (default 1)")] = 1,
                 deployment: Annotated[str | None, Parameter(
                     name="--deployment", metavar="NAME",
                     help="submit each date as a run of this deployment of PIPELINE (NAME or FLOW/NAME); its "
                          "work pool does the work")] = None,
                 argv: Annotated[tuple[str, ...], Parameter(parse=False)] = ()) -> int:
        """Run a task or pipeline once per date of --task-target-date START..END (both included).

        Each date is one run with that date as run.task_target_date; dates already computed for the same
        signature are reused. A failing date does not stop the others. Ends with one row per date (ran,
        reused or failed) and exits 1 when any date failed.
        """
        return backfill_command(pipeline, options, task_version=task_version, max_parallel=max_parallel,
                                argv=argv, deployment=deployment)


def backfill_command(pipeline: str | None, options: Any, *, task_version: str | None, max_parallel: int,
                     argv: Sequence[str] = (), deployment: str | None = None) -> int:
    """Check the request, run every date, print the table; 0 when every date ran or was reused, else 1."""
    from dbnd_prefect.api.backfill import backfill, parse_date_range
    from dbnd_prefect.cli import output
    from dbnd_prefect.cli.commands import parse_values
    from dbnd_prefect.errors import ConfigError

    sets = parse_values(options.set_values, "--set")
    overrides = parse_values(options.override_values, "--override")
    if not pipeline:
        raise ConfigError("dbnd backfill: missing PIPELINE",
                          hint="dbnd backfill PIPELINE --task-target-date 2024-01-01..2024-01-31")
    if options.task_target_date is None:
        raise ConfigError("dbnd backfill: missing --task-target-date START..END",
                          hint="e.g. --task-target-date 2024-01-01..2024-01-31")
    start, end = parse_date_range(options.task_target_date)
    if max_parallel < 1:
        raise ConfigError(f"dbnd backfill: --max-parallel {max_parallel}: expected a whole number >= 1")

    def progress(day: Any) -> None:  # one line per date on stderr as it ends, in whatever order they end
        print(f"backfill: {day.date} {day.status}", file=sys.stderr, flush=True)

    if deployment is not None:
        result = _through_deployment(pipeline, deployment, options, sets, overrides, start, end, max_parallel,
                                     progress)
        output.show(lambda: plain_summary(result), lambda: table_summary(result))
        return 0 if result.ok else 1
    with _quiet_failures(options.verbose):
        result = backfill(pipeline, start, end, set_values=sets, override_values=overrides, env=options.env,
                          conf_files=options.conf_files, task_version=task_version, modules=options.modules,
                          max_parallel=max_parallel, command_line=["dbnd", *argv], on_date=progress)
    output.show(lambda: plain_summary(result), lambda: table_summary(result))
    return 0 if result.ok else 1


def _through_deployment(pipeline: str, deployment: str, options: Any, sets: list, overrides: list, start: Any,
                        end: Any, max_parallel: int, progress: Any) -> Any:
    """Each date as a run of the deployment: PIPELINE and the --set values checked here first, nothing run here."""
    from dbnd_prefect.api.backfill import date_values
    from dbnd_prefect.api.backfill_remote import backfill_deployment, deployment_parameters
    from dbnd_prefect.api.run import prepare_run
    from dbnd_prefect.errors import ConfigError
    from dbnd_prefect.runtime.session import connect

    if overrides or options.env:
        raise ConfigError("dbnd backfill --deployment: --override and --env do not apply (the deployment's own "
                          "profile decides)", hint="pass deployment parameters with --set NAME=VALUE")
    prepared = prepare_run(pipeline, [*sets, date_values(start)], modules=options.modules,
                           conf_files=options.conf_files)
    if prepared.obj.kind != "pipeline":
        raise ConfigError(f"{prepared.obj.name} is a task; a deployment runs a pipeline",
                          hint="backfill the pipeline that calls it")
    connect(prepared.run)
    name = deployment if "/" in deployment else f"{prepared.obj.name}/{deployment}"
    return backfill_deployment(name, start, end, parameters=deployment_parameters(sets), max_parallel=max_parallel,
                               on_date=progress)


def _quiet_failures(verbose: bool) -> Any:
    """Prefect's console does not repeat a failure that the table reports in one line (unless --verbose)."""
    import contextlib

    if verbose:
        return contextlib.nullcontext()
    from dbnd_prefect.runtime.console import quiet_failure_reports

    return quiet_failure_reports()


def _head(result: Any) -> str:
    return (f"backfill {result.backfill_id}: {len(result.dates)} date(s), {result.count('ran')} ran, "
            f"{result.count('reused')} reused, {result.count('failed')} failed (Prefect tag {result.tag})")


def plain_summary(result: Any) -> str:
    """One line per date (`DATE STATUS FLOW_RUN_ID` or `DATE failed: why`), for grep."""
    from dbnd_prefect.redaction import redact

    lines = [_head(result)]
    for day in result.dates:
        if day.status == "failed":
            lines.append(f"{day.date} failed: {redact(day.error or '')}")
        else:
            lines.append(f"{day.date} {day.status} {day.flow_run_id or ''} {day.seconds:.1f}s".rstrip())
    return "\n".join(lines)


def table_summary(result: Any) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from dbnd_prefect.redaction import redact

    styles = {"ran": "green", "reused": "cyan", "failed": "bold red"}
    table = Table("DATE", "STATUS", "FLOW RUN", "SECONDS", "ERROR", box=None, header_style="bold")
    for day in result.dates:
        table.add_row(str(day.date), Text(day.status, style=styles[day.status]), day.flow_run_id or "",
                      f"{day.seconds:.1f}", redact(day.error or ""))
    return Group(Text(_head(result), style="bold"), table)


__all__ = ["register", "backfill_command", "plain_summary", "table_summary"]
