"""Tasks that run in their own environment, in the worker: the generic flow `dbnd-task` a work pool runs.

The caller (engine/remote_caller.py) submits one run of this flow per call, with the task's identity, its
arguments (JSON values, stored URIs, or values stored content-addressed under the data root), the caller's
signature and run settings. The worker imports the task from the project, checks that its code is the
caller's, and runs the call as a Prefect task of this flow run, through the usual body.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

import prefect

from dbnd_prefect.calls import CallOptions, signed
from dbnd_prefect.definitions.coerce import coerce
from dbnd_prefect.definitions.registry import import_by_identity
from dbnd_prefect.engine.flow_signature import settings_applied
from dbnd_prefect.engine.prefect_tasks import prefect_task_for
from dbnd_prefect.engine.remote_caller import FLOW_NAME, OUTPUT, STORED
from dbnd_prefect.errors import DbndError
from dbnd_prefect.fingerprint.signature import Signature
from dbnd_prefect.outputs import OutputRef, StoredOutput, TaskOutputs
from dbnd_prefect.runtime.session import ensure_run
from dbnd_prefect.targets.uploads import load_value



@prefect.flow(name=FLOW_NAME, persist_result=False, validate_parameters=False)
def dbnd_task(
    task: str,
    module: str,
    arguments: dict[str, Any],
    signature: dict[str, Any],
    settings: dict[str, Any],
    run_date: str,
    root: str = ".",
    root_flow_run_id: str | None = None,
    run_name: str | None = None,
) -> dict[str, str]:
    """Run one call of the dbnd task `task` (identity `path:qualname`) with the caller's signature, in the
    environment and data root `settings` give; its stored outputs' URIs by name."""
    obj = import_by_identity(task, module, root)
    wanted = Signature(**signature)
    if obj.code_fingerprint != wanted.code:
        raise DbndError(f"the code of task '{obj.name}' ({task}) here differs from the code that submitted it",
                        hint="run the same version of the project's code in the work pool's runs")
    with settings_applied(settings), ensure_run() as run:
        run.run_date = dt.date.fromisoformat(run_date)
        run.flow_run_id = root_flow_run_id
        values = {name: decode_argument(obj, name, value) for name, value in arguments.items()}
        call = signed(obj, values, run, wanted, CallOptions(task_name=run_name))
        outputs = prefect_task_for(obj, run, run_name)(call=call)
        return {name: stored.uri for name, stored in outputs.stored.items()}


def decode_argument(task: Any, name: str, value: Any) -> Any:
    """An argument as `encode_arguments` (engine/remote_caller.py) sent it, back as the value the task takes."""
    if isinstance(value, Mapping) and OUTPUT in value:
        out = value[OUTPUT]
        stored = StoredOutput(uri=out["uri"], format=out["format"], type_key=out["type_key"],
                              checksum=out.get("checksum"), bytes=out.get("bytes"))
        source = TaskOutputs(out["task"], out["signature"], [out["name"]], {out["name"]: stored}, None)
        return OutputRef(source, out["name"], out["signature"])
    if isinstance(value, Mapping) and STORED in value:
        return load_value(value[STORED])
    spec = task.param_map.get(name)
    if spec is None or spec.is_data or value is None:
        return value
    return coerce(task.name, spec, value)


__all__ = ["dbnd_task", "decode_argument"]
