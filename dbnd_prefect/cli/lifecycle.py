"""`dbnd gc`, `dbnd pin`, `dbnd unpin` and `dbnd diff`: the life of stored versions, declared for cyclopts.

`register(app)` adds the commands to the `dbnd` app (see the last line of app.py). Like app.py, nothing here
imports Prefect, pandas or pyarrow until a command runs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

from cyclopts import Parameter


@Parameter(name="*")
@dataclasses.dataclass(frozen=True)
class StoreOptions:
    """The configuration options of the commands that read the data root."""

    set_values: Annotated[tuple[str, ...], Parameter(
        name="--set", metavar="KEY=VALUE", help="a configuration value, e.g. gc.keep_last=5 (repeatable)")] = ()
    override_values: Annotated[tuple[str, ...], Parameter(
        name="--override", metavar="KEY=VALUE", help="like --set, beating every other layer")] = ()
    env: Annotated[str | None, Parameter(
        name="--env", metavar="NAME", help="environment profile: its data root and env (default local)")] = None
    conf_files: Annotated[tuple[str, ...], Parameter(
        name="--conf-file", metavar="PATH", help="a TOML configuration file (repeatable)")] = ()
    verbose: Annotated[bool, Parameter(name="--verbose", help="tracebacks and debug logs")] = False


Json = Annotated[bool, Parameter(name="--json", help="print one JSON object")]
Selector = Annotated[str, Parameter(name="SELECTOR", help="TASK.OUTPUT@latest, TASK.OUTPUT@run:RUN_ID or "
                                                          "@SIGNATURE (4+ hex digits)")]


def gc(*, modules: Annotated[tuple[str, ...], Parameter(
           name=["--module", "-m"], metavar="MODULE", help="only the tasks defined in MODULE (repeatable)")] = (),
       keep_last: Annotated[int | None, Parameter(
           name="--keep-last", metavar="N", help="keep the newest N versions of each task (gc.keep_last, "
                                                 "default 3)")] = None,
       older_than: Annotated[str | None, Parameter(
           name="--older-than", metavar="DURATION", help="remove only versions older than this, e.g. 30d, "
                                                         "12h (gc.older_than, default 7d)")] = None,
       apply: Annotated[bool, Parameter(name="--apply", help="remove; without it, only say what would go")] = False,
       as_json: Json = False, options: StoreOptions = StoreOptions()) -> int:
    """Remove old stored versions and what crashed runs left behind; a dry run unless --apply.

    Per task, the versions that would go and the bytes freed. A version stays when it is among the newest N
    of its task, newer than --older-than, pinned (dbnd pin), created or used within gc.grace (1h), or an
    input of a version that stays. Orphans (folders without a manifest, staging files, .unsaved.pkl) older
    than gc.grace go too.
    """
    from dbnd_prefect.api.gc import gc as collect
    from dbnd_prefect.cli import output

    resolved = _config(options)
    tasks = _module_tasks(modules) if modules else None
    report = collect(config=resolved, keep_last=keep_last, older_than=older_than, tasks=tasks, apply=apply)
    if as_json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        output.show(lambda: "\n".join(_gc_lines(report)), lambda: _gc_table(report))
    return 0


def pin(selector: Selector, /, *, note: Annotated[str | None, Parameter(name="--note", metavar="TEXT")] = None,
        options: StoreOptions = StoreOptions()) -> int:
    """Keep a stored version (and the versions it read) from dbnd gc."""
    from dbnd_prefect.api.gc import resolve_root
    from dbnd_prefect.api.pins import pin as add_pin

    root, env, _ = resolve_root(_config(options))
    document = add_pin(selector, root, env, note)
    print(f"pinned {document['task']} {document['signature'][:16]} ({selector}) under {root}")
    return 0


def unpin(selector: Selector, /, *, options: StoreOptions = StoreOptions()) -> int:
    """Let dbnd gc remove a pinned version again."""
    from dbnd_prefect.api.gc import resolve_root
    from dbnd_prefect.api.pins import unpin as drop_pin

    root, env, _ = resolve_root(_config(options))
    for signature in drop_pin(selector, root, env):
        print(f"unpinned {signature[:16]} under {root}")
    return 0


def diff(a: Annotated[str, Parameter(name="A", help="a version selector (TASK.OUTPUT@latest, @run:ID, "
                                                    "@SIGNATURE) or a URI")],
         b: Annotated[str, Parameter(name="B", help="the same, to compare A with")], /, *,
         key: Annotated[str | None, Parameter(name="--key", metavar="COL[,COL]",
                                              help="compare DataFrames row by row on these columns")] = None,
         as_json: Json = False,
         exit_code: Annotated[bool, Parameter(name="--exit-code", help="exit 1 when A and B differ")] = False,
         options: StoreOptions = StoreOptions()) -> int:
    """Why two stored versions differ (code, parameters, inputs) and what differs in their data.

    DataFrames: schema, rows, per-column statistics, and with --key the rows added, removed and changed.
    Other values: a unified diff of their JSON or text; files: size and checksum.
    """
    from dbnd_prefect.api.diff import diff as compare
    from dbnd_prefect.cli import output

    found = compare(a, b, key=key, config=_config(options))
    if as_json:
        print(json.dumps(found, indent=2, default=str))
    else:
        output.show(lambda: "\n".join(_diff_lines(found)), lambda: _diff_table(found))
    return 1 if exit_code and found["differ"] else 0


def register(app: Any) -> None:
    """Add the lifecycle commands to the `dbnd` app."""
    for command in (gc, pin, unpin, diff):
        app.command(command, name=command.__name__)


def _config(options: StoreOptions) -> Any:
    from pathlib import Path

    from dbnd_prefect.api.run import build_config
    from dbnd_prefect.cli.commands import parse_values

    return build_config(Path.cwd(), options.conf_files, parse_values(options.set_values, "--set"),
                        parse_values(options.override_values, "--override"), env=options.env)


def _module_tasks(modules: tuple[str, ...]) -> list[str]:
    """The names of the tasks defined in `modules` (imported from the working directory)."""
    from pathlib import Path

    from dbnd_prefect.api.discovery import discover

    def defined_in(obj: Any) -> bool:
        module = str(getattr(getattr(obj, "func", None), "__module__", "") or "")
        return any(module == m or module.startswith(m + ".") for m in modules)

    return [getattr(obj, "name", name) for name, obj in discover(modules, Path.cwd()).items() if defined_in(obj)]


# ----- what the commands print -------------------------------------------------------------------


def _size(count: int | None) -> str:
    from dbnd_prefect.cli.text import human_bytes

    return human_bytes(count)


def _gc_rows(report: Any) -> list[list[str]]:
    rows = []
    for task, versions in report.by_task().items():
        for v in sorted(versions, key=lambda v: v.ended, reverse=True):
            rows.append([task, "keep" if v.keep else "remove", v.signature[:16], v.ended.strftime("%Y-%m-%d %H:%M"),
                         _size(v.bytes), v.keep or v.folder])
    for o in report.orphans:
        rows.append(["(orphan)", "remove", "-", "-", _size(o.bytes), f"{o.kind}: {o.uri}"])
    return rows


def _gc_head(report: Any) -> str:
    mode = "removed" if report.applied else "dry run, nothing removed"
    return (f"dbnd gc under {report.root} (env {report.env}, {mode}): keep the newest {report.keep_last} per task, "
            f"versions newer than {_span(report.older_than)}, pinned ones, and what was made or used in the last "
            f"{_span(report.grace)}")


def _gc_tail(report: Any) -> str:
    counts = f"{len(report.removed)} version(s) and {len(report.orphans)} orphan(s)"
    if report.applied:
        skipped = f"; left {len(report.skipped)} alone (see above)" if report.skipped else ""
        return f"removed {counts}, freed {_size(report.freed)}{skipped}"
    return f"would remove {counts}, freeing {_size(report.freed)} (run again with --apply to remove them)"


def _gc_lines(report: Any) -> list[str]:
    lines = [_gc_head(report)]
    for task, versions in report.by_task().items():
        gone = [v for v in versions if v.keep is None]
        verb = "removed" if report.applied else "would remove"
        lines.append(f"{task}: {verb} {len(gone)} of {len(versions)} version(s), {_size(sum(v.bytes for v in gone))}")
        lines += [f"  {row[1]:<6}  {'  '.join(row[2:5])}  {row[5]}" for row in _gc_rows(report) if row[0] == task]
    if report.orphans:
        lines.append(f"orphans: {len(report.orphans)}, {_size(sum(o.bytes for o in report.orphans))}")
        lines += [f"  {row[1]}  {row[4]}  {row[5]}" for row in _gc_rows(report) if row[0] == "(orphan)"]
    lines += [f"left alone: {text}" for text in report.skipped]
    return [*lines, _gc_tail(report)]


def _gc_table(report: Any) -> Any:
    from rich.console import Group
    from rich.text import Text

    from dbnd_prefect.cli.tables import _table

    table = _table("TASK", "ACTION", "SIGNATURE", "ENDED (UTC)", "SIZE", "URI")
    for row in _gc_rows(report):
        table.add_row(*row[:5], Text(row[5], style="dim" if row[1] == "keep" else "red"))
    notes = [Text(f"left alone: {text}", style="yellow") for text in report.skipped]
    return Group(Text(_gc_head(report), style="bold"), table, *notes, Text(_gc_tail(report)))


def _span(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _side(name: str, side: dict[str, Any]) -> str:
    made = f" ({side['task']} {str(side['signature'])[:16]}, ended {side['ended']})" if side.get("signature") else ""
    return f"{name}: {side['asked']} -> {side['uri']}{made}"


def _diff_lines(found: dict[str, Any]) -> list[str]:
    lines = [_side("A", found["a"]), _side("B", found["b"])]
    lines += [f"why: {reason}" for reason in found.get("why", [])]
    lines += [f"  parameter {name}: {va!r} -> {vb!r}" for name, (va, vb) in found.get("params", {}).items()]
    lines += [f"  input {name}: {va} -> {vb}" for name, (va, vb) in found.get("inputs", {}).items()]
    if found["kind"] == "frame":
        schema = found["schema"]
        for label in ("added", "removed"):
            if schema[label]:
                lines.append(f"columns {label}: " + ", ".join(f"{c} ({t})" for c, t in schema[label].items()))
        lines += [f"column {c} changed type: {ta} -> {tb}" for c, (ta, tb) in schema["changed"].items()]
        lines.append(f"rows: {found['rows']['a']} -> {found['rows']['b']}")
        for name in found["stats_differ"]:
            sides = found["columns"][name]
            lines.append(f"column {name}: {_stats(sides['a'])} -> {_stats(sides['b'])}")
        keyed = found.get("keyed")
        if keyed:
            lines.append(f"rows by key {','.join(keyed['key'])}: {keyed['added']} added, {keyed['removed']} removed, "
                         f"{keyed['changed']} changed, {keyed['unchanged']} unchanged")
            lines += [f"  changed in column {c}: {n} row(s)" for c, n in keyed["columns"].items()]
            lines += [f"  added {row}" for row in keyed["samples"]["added"]]
            lines += [f"  removed {row}" for row in keyed["samples"]["removed"]]
            lines += [f"  changed {row['key']}: " + ", ".join(f"{c} {va!r} -> {vb!r}" for c, (va, vb) in
                                                              row["values"].items())
                      for row in keyed["samples"]["changed"]]
    elif found["kind"] == "value":
        lines += found["diff"] + (["... (diff truncated)"] if found.get("diff_truncated") else [])
    else:
        files = found["files"]
        lines.append(f"size: {files['a']['bytes']} -> {files['b']['bytes']} bytes; checksum: "
                     f"{str(files['a']['checksum'])[:16]} -> {str(files['b']['checksum'])[:16]}")
    lines.append("A and B differ" if found["differ"] else "A and B hold the same data")
    return lines


def _stats(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "(absent)"
    return " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items())


def _diff_table(found: dict[str, Any]) -> Any:
    from rich.console import Group
    from rich.text import Text

    from dbnd_prefect.cli.tables import _table

    lines = _diff_lines(found)
    if found["kind"] != "frame":
        return Text("\n".join(lines))
    table = _table("COLUMN", "TYPE A", "TYPE B", "STATS A", "STATS B")
    types = found["types"]
    for name, sides in found["columns"].items():
        style = "yellow" if name in found["stats_differ"] or name in found["schema"]["changed"] else None
        table.add_row(Text(name, style=style), types["a"].get(name, "-"), types["b"].get(name, "-"),
                      _stats(sides["a"]), _stats(sides["b"]))
    return Group(Text("\n".join(lines[:-1])), table, Text(lines[-1], style="bold"))
