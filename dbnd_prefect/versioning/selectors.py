"""Version selectors: `TASK.OUTPUT@latest` and `TASK.OUTPUT@run:<flow run id>` name stored outputs.

Accepted wherever a data parameter takes a URI (`--set`, configuration, call sites).
"""

from __future__ import annotations

import re
from typing import Any

from dbnd_prefect.errors import ParameterError

SELECTOR = re.compile(r"^(?P<task>[A-Za-z_][\w-]*)\.(?P<output>\w+)@(?P<selector>latest|run:[0-9a-fA-F-]+)$")


def is_selector(value: Any) -> bool:
    return isinstance(value, str) and SELECTOR.match(value) is not None


def resolve_selector(value: str, data_root: str, env: str) -> str:
    """The URI of the stored output a selector names; ParameterError when there is none."""
    from dbnd_prefect.history.versions import list_versions
    from dbnd_prefect.versioning.verify import verify_outputs

    match = SELECTOR.match(value)
    if match is None:
        raise ParameterError(f"{value!r} is not a version selector", hint="use TASK.OUTPUT@latest or @run:RUN_ID")
    task, output, selector = match["task"], match["output"], match["selector"]
    versions = list_versions(data_root, task, env)
    if selector.startswith("run:"):
        run_id = selector[4:].lower()
        by_id = [v for v in versions if any(str(v.get("prefect", {}).get(k) or "").startswith(run_id)
                                            for k in ("flow_run_id", "root_flow_run_id"))]
        versions = by_id or _used_by_run(versions, data_root, run_id, task)
    if not versions:
        where = f"flow run {selector[4:]}" if selector.startswith("run:") else f"environment '{env}'"
        raise ParameterError(
            f"{value}: no stored outputs of task '{task}' for {where} under {data_root}",
            hint=f"run '{task}' first, or see `dbnd versions {task}`",
        )
    outputs = versions[0].get("outputs", {})
    if output not in outputs:
        raise ParameterError(
            f"{value}: task '{task}' has no stored output '{output}'", hint=f"stored outputs are {sorted(outputs)}"
        )
    problem = verify_outputs({"outputs": {output: outputs[output]}})
    if problem is not None:  # never hand on data changed after it was written
        raise ParameterError(f"{value}: {problem}",
                             hint=f"run '{task}' again to store it anew, or pick another version (`dbnd versions {task}`)")
    return str(outputs[output]["uri"])


def _used_by_run(versions: list[dict[str, Any]], data_root: str, run_id: str, task: str) -> list[dict[str, Any]]:
    """The versions of `task` that run `run_id` reused (no manifest of its own names it; its run record does)."""
    from dbnd_prefect.history.run_record import find_run_records

    used = {entry.get("manifest") for record in find_run_records(data_root, run_id)
            for entry in record.get("task_runs", []) if entry.get("task") == task}
    return [v for v in versions if v.get("uri") in used]
