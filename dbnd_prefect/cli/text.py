"""Text the `dbnd` commands print: task help, listings, the plan and the end-of-run summary."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from dbnd_prefect.config.model import display_value

PRECEDENCE = ("precedence: --override > call-site argument > --set > DBND__ env > --conf-file > "
              "project files > parameter default")


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def current_value(obj: Any, config: Any, name: str) -> tuple[str, str]:
    """(shown value, where from) of parameter `name` as configuration gives it now."""
    from dbnd_prefect.config import task_values

    found = config.overrides_for(obj.name).get(name) or task_values(config, obj.name).get(name)
    if found is not None:
        return display_value(name, found.value), f"{found.layer} layer, {found.source}"
    spec = obj.param_map[name]
    if spec.required:
        return "(none: required)", "not configured"
    return display_value(name, spec.default), "parameter default"


def task_help(obj: Any, config: Any) -> str:
    """`dbnd run TASK --help`: the task's parameters with type, default and configured value."""
    from dbnd_prefect.definitions.introspect import first_doc_line, kind_of

    lines = [f"usage: dbnd run {obj.name} [--set {obj.name}.PARAM=VALUE]... [--override {obj.name}.PARAM=VALUE]... "
             "[--env NAME] [--conf-file PATH]... [--task-version V] [--describe] [--verbose]", ""]
    lines.append(f"{kind_of(obj)} {obj.name} ({obj.task_id})")
    doc = first_doc_line(obj)
    if doc:
        lines.append(f"  {doc}")
    lines += ["", "parameters:"]
    if obj.params:
        rows = [("NAME", "TYPE", "DEFAULT", "VALUE NOW", "FROM")]
        for spec in obj.params:
            default = "(required)" if spec.required else display_value(spec.name, spec.default)
            value, source = current_value(obj, config, spec.name)
            kind = spec.describe_type() + (" (data: path or URI)" if spec.is_data else "")
            rows.append((spec.name, kind, default, value, source))
        lines += _table(rows)
    else:
        lines.append("  (none)")
    outputs = getattr(obj, "outputs", None)
    if outputs:
        lines += ["", "outputs:"]
        lines += _table([(o.name, o.type_key) for o in outputs])
    inner = inner_parameter_rows(obj, config)
    if inner:
        lines += ["", f"parameters of the tasks {obj.name} calls (a value the pipeline passes in its code beats "
                      "--set; --override beats that):"]
        lines += _table(inner)
    lines += ["", f"set a parameter with --set {obj.name}.PARAM=VALUE (or --set PARAM=VALUE for {obj.name} itself);",
              f"{PRECEDENCE}.",
              f"see `dbnd config explain {obj.name}.PARAM` for every layer, `--describe` for the task graph."]
    return "\n".join(lines)


def inner_parameter_rows(obj: Any, config: Any) -> list[tuple[str, str, str, str, str]]:
    """Table rows (header first) for the parameters of the tasks pipeline `obj` calls; [] for a task."""
    from dbnd_prefect.definitions.introspect import called_tasks
    from dbnd_prefect.definitions.introspect import kind_of

    if kind_of(obj) != "pipeline":
        return []
    rows = []
    for task in called_tasks(obj):
        for spec in task.params:
            default = "(required)" if spec.required else display_value(spec.name, spec.default)
            value, source = current_value(task, config, spec.name)
            if spec.required and source == "not configured":
                value, source = "(passed by the pipeline)", "call site"
            kind = spec.describe_type() + (" (data: path or URI)" if spec.is_data else "")
            rows.append((f"{task.name}.{spec.name}", kind, default, value, source))
    return [("NAME", "TYPE", "DEFAULT", "VALUE NOW", "FROM"), *rows] if rows else []


def tasks_listing(items: Mapping[str, Any]) -> str:
    """`dbnd show-tasks`: pipelines, then tasks, each with its signature and module."""
    from dbnd_prefect.definitions.introspect import first_doc_line, kind_of, signature_text

    if not items:
        return ("no tasks or pipelines found (list modules in [run] modules of dbnd.toml, or give -m MODULE)")
    lines: list[str] = []
    for kind in ("pipeline", "task"):
        chosen = [obj for obj in items.values() if kind_of(obj) == kind]
        if not chosen:
            continue
        lines.append(f"{kind}s:")
        for obj in chosen:
            lines.append(f"  {signature_text(obj)}    [{obj.func.__module__}]")
            doc = first_doc_line(obj)
            if doc:
                lines.append(f"      {doc}")
    return "\n".join(lines)


def config_listing(config: Any) -> str:
    """`dbnd show-config`: every section's winning values with layer and source; every `run` key, with its
    default when no layer sets it."""
    lines: list[str] = []
    for section, rows in config_rows(config).items():
        lines.append(f"[{section}]")
        lines += _table([(f"{key} = {value}", f"# {source}") for key, value, source in rows])
    return "\n".join(lines)


def config_rows(config: Any) -> dict[str, list[tuple[str, str, str]]]:
    """Section -> (key, shown value, `LAYER layer, SOURCE`) rows, sorted; `run` lists every run key."""
    from dbnd_prefect.config.model import ConfigValue
    from dbnd_prefect.config.settings import RunSettings

    sections = {}
    for section in sorted({*config.sections(), "run"}):
        values = config.section(section)
        if section == "run":
            for key, field in RunSettings.model_fields.items():
                values.setdefault(key, ConfigValue(field.get_default(call_default_factory=True), "default", "default"))
        sections[section] = [(key, display_value(key, found.value), f"{found.layer} layer, {found.source}")
                             for key, found in sorted(values.items())]
    return sections


def describe(obj: Any, run: Any, planned: Sequence[Any]) -> str:
    """`dbnd run TASK --describe`: the task graph with resolved parameters and output targets."""
    from dbnd_prefect.api.plan import format_plan

    body = format_plan(list(planned))
    return "\n".join(part for part in (plan_head(obj, run, planned), body, plan_totals(planned)) if part)


def plan_head(obj: Any, run: Any, planned: Sequence[Any]) -> str:
    """`pipeline NAME: 3 task run(s) (env local, data root /p/data); nothing was run` (`run`: the planned run)."""
    from dbnd_prefect.definitions.introspect import kind_of

    return (f"{kind_of(obj)} {obj.name}: {len(planned)} task run(s) (env {run.env}, "
            f"data root {run.data_root}); nothing was run")


def plan_by_date(dates: Sequence[tuple[Any, Any, Sequence[Any]]]) -> str:
    """`dbnd plan --task-target-date START..END`: a head line, then per date its totals and each task run it
    would run, with why (`  train: miss (no stored version)`)."""
    first, prepared, planned = dates[0]
    head = plan_head(prepared.obj, prepared.run, planned).replace(
        f"{len(planned)} task run(s)", f"{len(dates)} date(s) {first}..{dates[-1][0]}")
    lines = [head]
    for day, _, planned in dates:
        lines.append(f"{day}: {plan_totals(planned)}")
        lines += [f"  {item.task.name}: {item.status} ({item.reason})" for item in planned if item.status != "hit"]
    return "\n".join(lines)


def plan_totals(planned: Sequence[Any]) -> str:
    """`would reuse 2 task run(s) and run 2 (1 miss, 1 stale)`."""
    counts = {status: sum(1 for p in planned if p.status == status) for status in ("hit", "miss", "stale")}
    reruns = counts["miss"] + counts["stale"]
    detail = ", ".join(f"{counts[s]} {s}" for s in ("miss", "stale") if counts[s])
    return f"would reuse {counts['hit']} task run(s) and run {reruns}" + (f" ({detail})" if detail else "")


def human_bytes(count: int | None) -> str:
    """`512 B`, `1.5 KiB`, `2.0 MiB`... ; `?` when unknown."""
    if count is None:
        return "?"
    size, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"


def _when(manifest: Mapping[str, Any]) -> str:
    import datetime as dt

    text = str(manifest.get("ended") or manifest.get("started") or "")
    try:
        stamp = dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)
    except ValueError:
        return text or "?"
    return stamp.strftime("%Y-%m-%d %H:%M:%S")


def _parameters(manifest: Mapping[str, Any], limit: int = 60) -> str:
    shown = " ".join(f"{k}={display_value(k, v)}" for k, v in manifest.get("parameters", {}).items())
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def versions_listing(task: str, output: str | None, versions: Sequence[Mapping[str, Any]], data_root: str,
                     env: str) -> str:
    """`dbnd versions TASK [OUTPUT]`: one row per stored version, newest first."""
    what = f"{task}.{output}" if output else task
    if not versions:
        return f"no stored versions of {what} under {data_root} (env {env})"
    return "\n".join([f"{what}: {len(versions)} stored version(s) under {data_root} (env {env}), newest first",
                      *_table(version_rows(output, versions)), versions_hint(task, output, versions)])


def version_rows(output: str | None, versions: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """The header and one row per stored version: ended, signature, flow run, size, parameters (, URI)."""
    rows = [("ENDED (UTC)", "SIGNATURE", "FLOW RUN", "SIZE", "PARAMETERS") + (("URI",) if output else ())]
    for manifest in versions:
        outputs = manifest.get("outputs", {})
        chosen = [outputs[output]] if output else list(outputs.values())
        sizes = [o.get("bytes") for o in chosen]
        size = None if any(b is None for b in sizes) else sum(sizes)
        row = (_when(manifest), str(manifest.get("signature", "?"))[:16], run_id_of(manifest), human_bytes(size),
               _parameters(manifest) or "-")
        rows.append(row + ((str(outputs[output].get("uri")),) if output else ()))
    return rows


def versions_hint(task: str, output: str | None, versions: Sequence[Mapping[str, Any]]) -> str:
    """How to pass one of the versions as a data parameter."""
    example = f"{task}.{output or next(iter(versions[0].get('outputs', {})), 'OUTPUT')}"
    return f"use one as a data parameter: --set TASK.PARAM={example}@latest or {example}@run:FLOW_RUN"


def run_id_of(manifest: Mapping[str, Any]) -> str:
    """The id of the run that wrote `manifest`, as `dbnd run` printed it (its top-level flow run)."""
    ids = manifest.get("prefect") or {}
    return str(ids.get("root_flow_run_id") or ids.get("flow_run_id") or "?")


def reproduce_report(run_id: str, results: Sequence[Any]) -> str:
    """`dbnd reproduce RUN_ID`: one line per output, `match` or `DIFFERS` with both checksums."""
    matched = sum(1 for r in results if r.matches)
    lines = [f"reproduced flow run {run_id}: {matched} of {len(results)} output(s) match their recorded checksum"]
    rows = []
    for r in results:
        if r.matches:
            rows.append((f"{r.task}.{r.output}", "match", f"checksum {str(r.checksum)[:16]}", r.uri or "-"))
        else:
            rows.append((f"{r.task}.{r.output}", "DIFFERS",
                         f"was {str(r.original_checksum)[:16]}, now {str(r.checksum)[:16]}", r.uri or "(not written)"))
    return "\n".join(lines + (_table(rows) if rows else []))


def api_url() -> str | None:
    """The configured Prefect API URL, or None (then runs have no UI link)."""
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        try:
            from prefect.settings import PREFECT_API_URL

            url = PREFECT_API_URL.value()
        except Exception:
            url = None
    return url or None


def ui_link(url: str, flow_run_id: str) -> str:
    """`http://host:4200/api` -> `http://host:4200/runs/flow-run/ID`."""
    base = url.rstrip("/")
    base = base[: -len("/api")] if base.endswith("/api") else base
    return f"{base}/runs/flow-run/{flow_run_id}"


def run_head(run: Any) -> str:
    """`run ID finished (env local, data root /p/data)`: the id is the Prefect flow run id."""
    return f"run {run.flow_run_id or run.run_uid} finished (env {run.env}, data root {run.data_root})"


def flow_run_line(run: Any) -> str | None:
    """`prefect flow run 'NAME' (ID): UI LINK`, or None without a Prefect API."""
    url, flow_run_id = api_url(), getattr(run, "flow_run_id", None)
    if not (url and flow_run_id):
        return None
    name = getattr(run, "flow_run_name", None)
    shown = f"'{name}' ({flow_run_id})" if name else flow_run_id
    return f"prefect flow run {shown}: {ui_link(url, flow_run_id)}"


def run_summary(run: Any) -> str:
    """The end-of-run summary: run id, Prefect flow run and UI link, each task's state and outputs.

    The run id is the Prefect flow run id: what `dbnd reproduce`, `TASK.OUTPUT@run:ID` and the FLOW RUN
    column of `dbnd versions` take.
    """
    lines = [run_head(run)]
    link = flow_run_line(run)
    if link:
        lines.append(link)
    for entry in run.task_runs:
        lines.append(f"  {entry['task']}: {entry['state']}")
        outputs = entry.get("outputs", {})
        if outputs:
            lines += _table([(name, uri) for name, uri in outputs.items()], indent="    ")
    if getattr(run, "record_uri", None):
        lines.append(f"run record: {run.record_uri}")
    return "\n".join(lines)
