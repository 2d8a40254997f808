"""What happens inside one task run: load inputs, call the function, write outputs and manifest."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import pathlib
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from dbnd_prefect import layout
from dbnd_prefect.errors import DbndError, TargetError
from dbnd_prefect.outputs import OutputRef, StoredOutput, TaskOutputs
from dbnd_prefect.params import ParamSpec, split_outputs

logger = logging.getLogger("dbnd_prefect")

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.decorators import DbndTask
    from dbnd_prefect.run_context import RunContext


def load_input(task_name: str, spec: ParamSpec | None, value: Any) -> Any:
    """The value a task function receives for one parameter."""
    from dbnd_prefect.params import input_target
    from dbnd_prefect.targets import Target
    from dbnd_prefect.targets.folder import FOLDER_TYPE_KEYS

    if isinstance(value, OutputRef):
        value = value.result()
    elif isinstance(value, TaskOutputs):
        value = value.value()
    elif isinstance(value, (list, tuple, dict)):
        from dbnd_prefect.wiring import resolve_refs

        value = resolve_refs(value)  # fan-in: a list or dict of upstream outputs
    if spec is None or not spec.is_data:
        return value
    if spec.type_key == "dbnd_prefect.Target":
        return value if value is None else input_target(spec, value)
    if not isinstance(value, (Target, str, os.PathLike)):
        from dbnd_prefect.targets.formats import engine_value_for

        try:
            return engine_value_for(spec.type_key, value)  # a Spark frame given to a pandas parameter
        except DbndError as exc:
            raise _as_input_error(exc, task_name, spec.name, "(an upstream output in memory)")
    try:
        target = input_target(spec, value)
        if spec.type_key == "pathlib.Path":
            return target.local_path()
        _refuse_foreign_pickle(target, spec)
        return target.load(spec.type_key)
    except DbndError as exc:
        from dbnd_prefect.redaction import redact

        uri = redact(str(getattr(value, "uri", value)))
        directory = None if spec.type_key in FOLDER_TYPE_KEYS else _directory_error(value)
        if directory is None:
            raise _as_input_error(exc, task_name, spec.name, uri)
        raise _as_input_error(directory, task_name, spec.name, uri) from exc


def _refuse_foreign_pickle(target: Any, spec: ParamSpec) -> None:
    """TargetError for a pickle from outside the run's data root, unless the run or the parameter allows it."""
    from dbnd_prefect.run_context import current_run
    from dbnd_prefect.targets.trust import refuse_foreign_pickle

    run = current_run()
    if run is not None:
        allowed = run.allow_foreign_pickle or (spec.data is not None and spec.data.allow_pickle)
        refuse_foreign_pickle(target, run.data_root, allowed)


def _directory_error(value: Any) -> TargetError | None:
    """The error to report when a data input names a local directory (loading it fails whatever its name)."""
    from dbnd_prefect.targets import split_uri

    text = str(getattr(value, "uri", value))
    protocol, path = split_uri(text)
    if protocol != "file" or not os.path.isdir(path):
        return None
    return TargetError(f"'{os.path.abspath(path)}' is a directory, not a file", hint="pass the path of a file")


def _as_input_error(error: DbndError, task_name: str, param: str, uri: str) -> DbndError:
    """`error` naming the task and parameter whose input it is, marked as bad input (exit code 2)."""
    _fail_as_input_error()
    return error.add_context(f"task '{task_name}', parameter '{param}'", task=task_name, parameter=param, uri=uri)


def _fail_as_input_error() -> None:
    """Let the task run that is failing on bad input leave nothing behind and log no traceback.

    Prefect pickles the exception of a failed task run into the result storage (the data root's
    `.dbnd/`) when the run persists results; for bad input that record is of no use to anyone, so
    this run attempt stops persisting. Prefect also logs the exception with its traceback: the
    input-error filter reduces that to Prefect's one-line message.
    """
    from prefect.context import TaskRunContext

    from dbnd_prefect.prefect_quiet import hide_input_error_tracebacks

    hide_input_error_tracebacks()
    context = TaskRunContext.get()
    if context is not None:
        context.persist_result = False  # read by Prefect's failure handling of this attempt only


def output_dir(run: "RunContext", task_name: str, signature: Any) -> str:
    """The folder of this run's outputs of `task_name` with `signature` (see layout.py)."""
    date = dt.date.fromisoformat(signature.target_date) if signature.target_date else run.run_date
    return layout.output_dir(run.data_root, run.env, date, task_name, signature.digest)


def write_outputs(
    task: "DbndTask", run: "RunContext", signature: Any, values: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Write each non-None output to its typed target; on any failure remove what this call wrote."""
    from dbnd_prefect.targets import type_key
    from dbnd_prefect.targets.output_choice import OutputRequest, save_output

    folder = output_dir(run, task.name, signature)
    written: list[Any] = []
    infos: dict[str, dict[str, Any]] = {}
    try:
        for spec in task.outputs:
            if not spec.returned:
                continue  # a file the task wrote itself (store_files)
            value = values[spec.name]
            if value is None:
                continue
            configured = run.config.get("formats", type_key(value))
            request = OutputRequest(spec.name, spec.format, configured, spec.save_options, spec.lines)
            target, info = save_output(folder, task.name, request, value)  # a format that holds the value
            written.append(target)
            info["store_version"] = target.fingerprint()
            infos[spec.name] = info
    except Exception as exc:
        for target in written:
            try:
                target.fs.rm(target.path, recursive=True)
            except Exception:
                pass
        _name_task(exc, task.name, f"output '{spec.name}'")
        raise
    return infos


def _name_task(exc: BaseException, task_name: str, what: str) -> None:
    """Put the task (and which of its files) in front of a storage error that does not name it yet: the
    failure then names the task whose output could not be stored, not just the pipeline around it."""
    if isinstance(exc, DbndError) and exc.task is None and f"task '{task_name}'" not in exc.message:
        exc.add_context(f"task '{task_name}', {what}", task=task_name)


@contextlib.contextmanager
def staged_files(task: "DbndTask") -> Iterator[dict[str, pathlib.Path]]:
    """A fresh local path for each file the task writes itself (its `Output()` parameters), removed after."""
    specs = [s for s in task.outputs if not s.returned]
    if not specs:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix=f"dbnd-{layout.folder_name(task.name)}-") as folder:
        yield {s.name: pathlib.Path(folder) / f"{s.name}{s.file.extension}" for s in specs}


def store_files(task: "DbndTask", run: "RunContext", signature: Any,
                staged: Mapping[str, pathlib.Path]) -> dict[str, dict[str, Any]]:
    """Copy each file the task wrote into its output folder, atomically; OutputError for one it did not write."""
    from dbnd_prefect.errors import OutputError
    from dbnd_prefect.targets import Target

    folder = output_dir(run, task.name, signature)
    infos: dict[str, dict[str, Any]] = {}
    for name, path in staged.items():
        if not path.is_file():
            raise OutputError(f"task '{task.name}' did not write its output file '{name}' ({path.name})",
                              hint=f"write the file to the path the task receives as '{name}'")
        target = Target(f"{folder}/{path.name}")
        with target.writer("wb") as out, path.open("rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
        infos[name] = {"uri": target.uri, "format": None, "type_key": "pathlib.Path",
                       "bytes": path.stat().st_size, "checksum": target.checksum(),
                       "store_version": target.fingerprint()}
    return infos


def run_task_body(call: "BoundCall") -> TaskOutputs:
    """The function Prefect runs for a dbnd task: load the call's inputs, call the function, store outputs."""
    from dbnd_prefect.run_context import current_run, joined

    in_effect = current_run()
    run = in_effect or call.run
    if run is None:
        raise RuntimeError(f"task '{call.task.name}' ran outside a dbnd run")
    if call.task.task_env is not None:
        from dbnd_prefect.remote_tasks import caller_env, submit

        if caller_env(call, current_run()) != call.task.task_env:
            return submit(call, run)  # a deployment run on the task's environment's work pool
    if in_effect is None:  # in another process (a Dask worker): the profile's env vars are set around the body
        from dbnd_prefect.run_profile import environment_variables, profile_environment

        with joined(run), environment_variables(profile_environment(run)):
            return _run_call(call, run)
    with joined(run):
        return _run_call(call, run)


def _run_call(call: "BoundCall", run: "RunContext") -> TaskOutputs:
    from prefect.context import TaskRunContext

    from dbnd_prefect.history.manifest import build_manifest
    from dbnd_prefect.targets import Target
    from dbnd_prefect.targets.formats import engine_values_stored
    from dbnd_prefect.tracking import TaskTracking

    task, arguments, signature = call.task, call.arguments, call.signature
    started = dt.datetime.now(dt.timezone.utc)
    task_ctx = TaskRunContext.get()
    task_run_id = task_ctx.task_run.id if task_ctx else None

    specs = task.param_map
    tracking = TaskTracking(task, run, output_dir(run, task.name, signature) if task.versioned else None)
    loaded = {name: load_input(task.name, specs.get(name), value) for name, value in arguments.items()}
    loaded = tracking.inputs(arguments, loaded)  # data contracts and profiles
    with staged_files(task) as staged, tracking.collecting() as metrics:
        returned = task.call_function({**loaded, **staged})
        returned_specs = [s for s in task.outputs if s.returned]
        values = tracking.outputs(split_outputs(task.name, returned_specs, returned) if returned_specs else {})
        files = store_files(task, run, signature, staged)
    names = [s.name for s in task.outputs]
    if not task.versioned:  # outputs stay in memory; the signature still chains downstream tasks
        tracking.publish()
        return TaskOutputs(task.name, signature.digest, names, {}, None, values)
    infos = {**write_outputs(task, run, signature, values), **files}
    values = engine_values_stored(values, infos)  # Spark frames continue from what was written, not recomputed

    folder = output_dir(run, task.name, signature)
    manifest_uri = layout.manifest_uri(folder)
    flow_run_id = str(task_ctx.task_run.flow_run_id) if task_ctx and task_ctx.task_run.flow_run_id else None

    manifest = build_manifest(
        task_name=task.name,
        signature=signature,
        inputs=_describe_inputs(task, arguments, signature),
        parameters={n: v for n, v in arguments.items() if not _is_input(specs.get(n), v)},
        outputs=infos,
        flow_run_id=flow_run_id,
        task_run_id=str(task_run_id) if task_run_id else None,
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
        _name_task(exc, task.name, "manifest")
        raise
    tracking.publish()
    stored = {
        name: StoredOutput(uri=i["uri"], format=i["format"], type_key=i["type_key"], checksum=i.get("checksum"),
                           bytes=i.get("bytes"))
        for name, i in infos.items()
    }
    return TaskOutputs(task.name, signature.digest, names, stored, manifest_uri, values)


def _is_input(spec: ParamSpec | None, value: Any) -> bool:
    """Data parameters, and any value produced by an upstream task, are inputs; the rest are parameters."""
    return (spec is not None and spec.is_data) or isinstance(value, (OutputRef, TaskOutputs))


def _describe_inputs(task: "DbndTask", arguments: Mapping[str, Any], signature: Any) -> list[dict[str, Any]]:
    """The manifest's `inputs`: each data input's fingerprint, URI (credentials removed) and producer."""
    from dbnd_prefect.redaction import redact
    from dbnd_prefect.targets import Target

    described = []
    for name, value in arguments.items():
        if not _is_input(task.param_map.get(name), value):
            continue
        entry: dict[str, Any] = {"name": name, "fingerprint": signature.params.get(name), "uri": None}
        if isinstance(value, OutputRef) and isinstance(value.source, TaskOutputs):
            src = value.source
            entry.update(producer_task=src.task_name, producer_signature=src.signature, output=value.name)
            stored = src.stored.get(value.name)
            if stored is not None:
                entry.update(uri=stored.uri, format=stored.format, type_key=stored.type_key)
        elif isinstance(value, Target):
            entry["uri"] = redact(value.uri)
        elif isinstance(value, (str, pathlib.PurePath)):
            entry["uri"] = redact(str(value))
        described.append(entry)
    return described
