"""What happens inside one task run: load the call's inputs, call the function, write its outputs and manifest.

`run_task_body(call)` is the function Prefect runs for every dbnd task run. A task with a `task_env` of
its own, called from another environment, is submitted there instead (engine/remote_caller.py). In
another process (a Dask worker) the call brings its run's settings, and the profile's environment
variables are set around the body.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING

from dbnd_prefect import layout
from dbnd_prefect.context import current_run, joined
from dbnd_prefect.definitions.spec import split_outputs
from dbnd_prefect.engine.task_inputs import describe_inputs, fail_as_input_error, load_inputs, parameters_of
from dbnd_prefect.engine.task_senders import sender_for
from dbnd_prefect.engine.task_outputs import name_task, staged_files, store_files, write_outputs
from dbnd_prefect.errors import DataContractError, DbndError
from dbnd_prefect.history.manifest import build_manifest
from dbnd_prefect.outputs import StoredOutput, TaskOutputs
from dbnd_prefect.targets import Target
from dbnd_prefect.targets.formats import engine_values_stored

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext


def run_task_body(call: "BoundCall", task_run: tuple[str | None, str | None] | None = None) -> TaskOutputs:
    """The function Prefect runs for a dbnd task: load the call's inputs, call the function, store outputs.

    `task_run` is (flow run id, task run id) of the Prefect task run this body belongs to when that runs in
    another process (a Databricks job's launcher): the manifest names them; default: the task run in effect."""
    in_effect = current_run()
    run = in_effect or call.run
    if run is None:
        raise RuntimeError(f"task '{call.task.name}' ran outside a dbnd run")
    if call.task.task_env is not None:
        from dbnd_prefect.engine.remote_caller import caller_env, submit

        if caller_env(call, in_effect) != call.task.task_env:
            return submit(call, run)  # a deployment run on the task's environment's work pool
    sender = sender_for(call.task, run)
    if sender is not None:  # e.g. a Spark task of a Databricks profile: a Databricks job run
        with joined(run):
            return sender.submit(call, run)
    if in_effect is None:  # in another process (a Dask worker): the profile's env vars are set around the body
        from dbnd_prefect.engine.runners import environment_variables

        with joined(run), environment_variables(run.profile.profile.env):
            return _run_call(call, run, task_run)
    with joined(run):
        return _run_call(call, run, task_run)


def _run_call(call: "BoundCall", run: "RunContext", task_run: tuple[str | None, str | None] | None) -> TaskOutputs:
    from prefect.context import TaskRunContext

    from dbnd_prefect.tracking import TaskTracking

    task, signature = call.task, call.signature
    started = dt.datetime.now(dt.timezone.utc)
    task_ctx = TaskRunContext.get()
    if task_run is None:
        task_run = (str(task_ctx.task_run.flow_run_id) if task_ctx and task_ctx.task_run.flow_run_id else None,
                    str(task_ctx.task_run.id) if task_ctx else None)
    flow_run_id, task_run_id = task_run

    tracking = TaskTracking(task, run.tracking, call.output_dir if task.versioned else None)
    loaded = load_inputs(call, run)
    try:
        loaded = tracking.inputs(call.arguments, loaded)  # data contracts and profiles
    except DataContractError:
        fail_as_input_error()  # bad input data: exit code 2, nothing persisted
        raise
    with staged_files(task) as staged, tracking.collecting() as metrics:
        returned = task.call_function({**loaded, **staged})
        returned_specs = [s for s in task.outputs if s.returned]
        values = tracking.outputs(split_outputs(task.name, returned_specs, returned) if returned_specs else {})
        files = store_files(call, staged)
    names = task.output_names
    if not task.versioned:  # outputs stay in memory; the signature still chains downstream tasks
        tracking.publish()
        return TaskOutputs(task.name, signature.digest, names, {}, None, values)
    infos = {**write_outputs(call, values), **files}
    values = engine_values_stored(values, infos)  # Spark frames continue from what was written, not recomputed

    manifest_uri = layout.manifest_uri(call.output_dir)
    manifest = build_manifest(
        task_name=task.name,
        signature=signature,
        inputs=describe_inputs(call),
        parameters=parameters_of(call),
        outputs=infos,
        flow_run_id=flow_run_id,
        task_run_id=task_run_id,
        root_flow_run_id=run.flow_run_id,
        started=started,
        ended=dt.datetime.now(dt.timezone.utc),
        command_line=run.command_line,
        cwd=os.getcwd(),
        metrics=metrics,
    )
    manifest["tracking"] = tracking.record()
    try:
        Target(manifest_uri, format="json").save(manifest)
    except DbndError as exc:
        name_task(exc, task.name, "manifest")
        raise
    tracking.publish()
    stored = {
        name: StoredOutput(uri=i["uri"], format=i["format"], type_key=i["type_key"], checksum=i.get("checksum"),
                           bytes=i.get("bytes"))
        for name, i in infos.items()
    }
    return TaskOutputs(task.name, signature.digest, names, stored, manifest_uri, values)


__all__ = ["run_task_body"]
