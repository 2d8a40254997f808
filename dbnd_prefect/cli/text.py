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
    from dbnd_prefect.discovery import first_doc_line, kind_of

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
    lines += ["", f"set a parameter with --set {obj.name}.PARAM=VALUE (or --set PARAM=VALUE for {obj.name} itself);",
              f"{PRECEDENCE}.",
              f"see `dbnd config explain {obj.name}.PARAM` for every layer, `--describe` for the task graph."]
    return "\n".join(lines)


def tasks_listing(items: Mapping[str, Any]) -> str:
    """`dbnd show-tasks`: pipelines, then tasks, each with its signature and module."""
    from dbnd_prefect.discovery import first_doc_line, kind_of, signature_text

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
    """`dbnd show-config`: every section's winning values with layer and source."""
    lines: list[str] = []
    for section in config.sections():
        lines.append(f"[{section}]")
        values = config.section(section)
        rows = [(f"{key} = {display_value(key, found.value)}", f"# {found.layer} layer, {found.source}")
                for key, found in sorted(values.items())]
        lines += _table(rows)
    return "\n".join(lines)


def describe(obj: Any, config: Any, planned: Sequence[Any]) -> str:
    """`dbnd run TASK --describe`: the task graph with resolved parameters and output targets."""
    from dbnd_prefect.config import run_settings
    from dbnd_prefect.discovery import kind_of
    from dbnd_prefect.planning import format_plan
    from dbnd_prefect.targets import normalize_uri

    settings = run_settings(config)
    head = (f"{kind_of(obj)} {obj.name}: {len(planned)} task run(s) (env {settings.env}, "
            f"data root {normalize_uri(settings.data_root)}); nothing was run")
    body = format_plan(list(planned))
    return f"{head}\n{body}" if body else head


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


def flow_run_of(run: Any) -> tuple[str, str] | None:
    """(id, name) of the top-level Prefect flow run of a dbnd run, asked from the API; None if unknown."""
    try:
        import uuid

        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            flow_run_id = getattr(run, "flow_run_id", None) or _flow_run_id(run, client)
            if not flow_run_id:
                return None
            flow_run = client.read_flow_run(uuid.UUID(str(flow_run_id)))
            while flow_run.parent_task_run_id is not None:  # a nested pipeline: go up to the top
                parent = client.read_task_run(flow_run.parent_task_run_id)
                flow_run = client.read_flow_run(parent.flow_run_id)
            return str(flow_run.id), flow_run.name
    except Exception:  # the summary must not fail a run that succeeded
        return None


def _flow_run_id(run: Any, client: Any) -> str | None:
    """The flow run id from a manifest written in this run, else from a task run the API knows."""
    import time
    import uuid

    from dbnd_prefect.targets import Target

    for entry in run.task_runs:
        if entry.get("state") == "Completed" and entry.get("manifest"):
            found = (Target(entry["manifest"], format="json").load("dict").get("prefect") or {}).get("flow_run_id")
            if found:
                return str(found)
    ids = [e["task_run_id"] for e in run.task_runs if e.get("task_run_id")]
    for attempt in range(10):  # task runs reach the API through events, a moment after they ran
        try:
            return str(client.read_task_run(uuid.UUID(ids[0])).flow_run_id) if ids else None
        except Exception:
            time.sleep(0.2)
    return None


def run_summary(run: Any) -> str:
    """The end-of-run summary: run id, Prefect flow run and UI link, each task's state and outputs."""
    lines = [f"run {run.run_uid} finished (env {run.env}, data root {run.data_root})"]
    url = api_url()
    flow_run = flow_run_of(run) if url else None
    if flow_run is not None:
        lines.append(f"prefect flow run '{flow_run[1]}' ({flow_run[0]}): {ui_link(url or '', flow_run[0])}")
    for entry in run.task_runs:
        lines.append(f"  {entry['task']}: {entry['state']}")
        outputs = entry.get("outputs", {})
        if outputs:
            lines += _table([(name, uri) for name, uri in outputs.items()], indent="    ")
    return "\n".join(lines)
