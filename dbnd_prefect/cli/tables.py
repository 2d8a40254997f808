"""Rich tables of the `dbnd` commands' results, printed on a terminal (see `output.show`).

The rows come from `dbnd_prefect.cli.text`, which prints the same facts as plain lines elsewhere.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from dbnd_prefect.cli import text
from dbnd_prefect.config.model import display_value

STATUS_STYLES = {"hit": "green", "miss": "yellow", "stale": "red", "Completed": "green", "Cached": "cyan",
                 "Failed": "red", "Crashed": "red"}


FOLDED = ("URI", "OUTPUTS")  # paths are folded onto more lines when narrow, never cut: they are copied


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold" if column in FOLDED else "ellipsis")
    return table


def _styled(value: str) -> Text:
    return Text(value, style=STATUS_STYLES.get(value, ""))


def run_summary(run: Any) -> RenderableType:
    """The end-of-run summary: run id line, Prefect link, one row per task output, the run record."""
    parts: list[RenderableType] = [Text(text.run_head(run), style="bold")]
    link = text.flow_run_line(run)
    if link:
        parts.append(Text(link))
    table = _table("TASK", "STATE", "OUTPUT", "URI")
    for entry in run.task_runs:
        outputs = list(entry.get("outputs", {}).items()) or [("", "")]
        for i, (name, uri) in enumerate(outputs):
            first = i == 0
            table.add_row(entry["task"] if first else "", _styled(entry["state"]) if first else "", name, uri)
    parts.append(table)
    if getattr(run, "record_uri", None):
        parts.append(Text(f"run record: {run.record_uri}"))
    return Group(*parts)


def describe(obj: Any, run: Any, planned: Sequence[Any]) -> RenderableType:
    """`dbnd plan` / `dbnd run --describe`: one row per task run with status, why, parameters and targets."""
    table = _table("TASK", "STATUS", "SIGNATURE", "WHY", "PARAMETERS", "OUTPUTS")
    for item in planned:
        arguments = "\n".join(f"{name} = {_shown(name, value)}" for name, value in item.arguments.items())
        outputs = "\n".join(f"{name}: {uri}" for name, uri in item.outputs.items())
        why = f"{item.reason}; runs as {item.runs_on}" if item.runs_on else item.reason
        table.add_row(item.task.name, _styled(item.status), item.signature.short, why, arguments, outputs)
    return Group(Text(text.plan_head(obj, run, planned), style="bold"), table,
                 Text(text.plan_totals(planned), style="bold"))


def plan_by_date(dates: Sequence[tuple[Any, Any, Sequence[Any]]]) -> RenderableType:
    """`dbnd plan --task-target-date START..END`: one row per date, what it would reuse and run, and why."""
    table = _table("DATE", "REUSE", "RUN", "WOULD RUN")
    for day, _, planned in dates:
        runs = [item for item in planned if item.status != "hit"]
        table.add_row(str(day), str(len(planned) - len(runs)), str(len(runs)),
                      "\n".join(f"{item.task.name}: {item.status} ({item.reason})" for item in runs))
    head = text.plan_by_date(dates).splitlines()[0]
    return Group(Text(head, style="bold"), table)


def _shown(name: str, value: Any) -> str:
    source = getattr(value, "source", None)
    if source is not None and hasattr(value, "name"):  # an upstream task's output
        return f"<{value.name} of {getattr(source, 'task_name', '?')}>"
    shown = str(value) if hasattr(value, "uri") else display_value(name, value)
    return shown if len(shown) < 100 else shown[:97] + "..."


def versions_listing(task: str, output: str | None, versions: Sequence[Mapping[str, Any]], data_root: str,
                     env: str) -> RenderableType:
    """`dbnd versions TASK [OUTPUT]`: a table of the stored versions, newest first."""
    if not versions:
        return Text(text.versions_listing(task, output, versions, data_root, env))
    what = f"{task}.{output}" if output else task
    header, *rows = text.version_rows(output, versions)
    table = _table(*header)
    for row in rows:
        table.add_row(*row)
    return Group(Text(f"{what}: {len(versions)} stored version(s) under {data_root} (env {env}), newest first",
                      style="bold"), table, Text(text.versions_hint(task, output, versions)))


def config_listing(config: Any) -> RenderableType:
    """`dbnd show-config`: one table, a section per configuration section."""
    table = _table("KEY", "VALUE", "FROM")
    for section, rows in text.config_rows(config).items():
        table.add_row(Text(f"[{section}]", style="bold"), "", "")
        for key, value, source in rows:
            table.add_row(f"  {key}", value, Text(source, style="dim"))
    return table
