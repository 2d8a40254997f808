"""A task run's inputs: each parameter's value loaded for the function, and what the manifest records of it.

A data input on storage arrives as the Target the binder made of it (calls.py) and is loaded by its format;
an upstream output arrives as a reference and is taken from memory or from where it was stored. Bad input
data (a missing or unreadable file, a directory, a refused pickle) is an input error naming the task, the
parameter and the URI: exit code 2, and the task run fails without persisting anything.
"""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any

from dbnd_prefect import plugins, prefect_internals
from dbnd_prefect.definitions.spec import ParamSpec
from dbnd_prefect.errors import DbndError, TargetError
from dbnd_prefect.outputs import OutputRef, TaskOutputs, resolve_refs
from dbnd_prefect.redaction import redact
from dbnd_prefect.targets import Target, split_uri
from dbnd_prefect.targets.folder import FOLDER_TYPE_KEYS
from dbnd_prefect.targets.formats import engine_value_for
from dbnd_prefect.targets.trust import refuse_foreign_pickle

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext


def load_inputs(call: "BoundCall", run: "RunContext") -> dict[str, Any]:
    """The value the task function receives for each parameter of `call`."""
    task = call.task
    return {name: load_input(task.name, task.param_map.get(name), value, call.inputs.get(name), run)
            for name, value in call.arguments.items()}


def load_input(task_name: str, spec: ParamSpec | None, value: Any, target: Target | None, run: "RunContext") -> Any:
    """The value a task function receives for one parameter (`target`: the data input's Target, if on storage)."""
    if isinstance(value, OutputRef):
        stored = _engine_frame_on_storage(value, spec)
        if stored is not None:  # an engine frame (Spark) made elsewhere, for a pandas parameter: read as pandas
            value = target = Target(stored.uri, format=stored.format)
        else:
            value = value.result()
    elif isinstance(value, TaskOutputs):
        value = value.value()
    elif isinstance(value, (list, tuple, dict)):
        value = resolve_refs(value)  # fan-in: a list or dict of upstream outputs
    if spec is None or not spec.is_data:
        return value
    if target is None and isinstance(value, (str, os.PathLike, Target)):
        from dbnd_prefect.definitions.spec import input_target

        try:
            target = input_target(spec, value)
        except DbndError as exc:
            raise as_input_error(exc, task_name, spec.name, redact(str(getattr(value, "uri", value))))
    if spec.type_key == "dbnd_prefect.Target":
        return target
    if target is None:
        try:
            return engine_value_for(spec.type_key, value)  # a Spark frame given to a pandas parameter
        except DbndError as exc:
            raise as_input_error(exc, task_name, spec.name, "(an upstream output in memory)")
    try:
        if spec.type_key == "pathlib.Path":
            return target.local_path()
        allowed = run.allow_foreign_pickle or (spec.data is not None and spec.data.allow_pickle)
        refuse_foreign_pickle(target, run.data_root, allowed)
        return target.load(spec.type_key)
    except DbndError as exc:
        uri = redact(str(getattr(value, "uri", value)))
        directory = None if spec.type_key in FOLDER_TYPE_KEYS else _directory_error(value)
        if directory is None:
            raise as_input_error(exc, task_name, spec.name, uri)
        raise as_input_error(directory, task_name, spec.name, uri) from exc


def _engine_frame_on_storage(ref: OutputRef, spec: ParamSpec | None) -> Any:
    """The stored output `ref` names when it is an engine's frame (a Spark folder) not in this process's
    memory and the parameter takes a plain type: it is read as that type with no engine session (the engine
    may run elsewhere: a Databricks job). None otherwise."""
    if spec is None or not spec.is_data or plugins.frame_type(spec.type_key) is not None:
        return None
    source = ref.source if isinstance(ref.source, TaskOutputs) else ref.source.result()
    stored = source.stored.get(ref.name)
    if stored is None or source.holds(ref.name) or plugins.frame_type(stored.type_key) is None:
        return None
    return stored


def _directory_error(value: Any) -> TargetError | None:
    """The error to report when a data input names a local directory (loading it fails whatever its name)."""
    text = str(getattr(value, "uri", value))
    protocol, path = split_uri(text)
    if protocol != "file" or not os.path.isdir(path):
        return None
    return TargetError(f"'{os.path.abspath(path)}' is a directory, not a file", hint="pass the path of a file")


def as_input_error(error: DbndError, task_name: str, param: str, uri: str) -> DbndError:
    """`error` naming the task and parameter whose input it is, marked as bad input (exit code 2)."""
    fail_as_input_error()
    return error.add_context(f"task '{task_name}', parameter '{param}'", task=task_name, parameter=param, uri=uri)


def fail_as_input_error() -> None:
    """Let the task run that is failing on bad input leave nothing behind and log no traceback.

    Prefect pickles the exception of a failed task run into the result storage (the data root's
    `.dbnd/`) when the run persists results; for bad input that record is of no use to anyone, so
    this run attempt stops persisting. Prefect also logs the exception with its traceback: the
    input-error filter reduces that to Prefect's one-line message.
    """
    from prefect.context import TaskRunContext

    from dbnd_prefect.runtime.console import hide_input_error_tracebacks

    hide_input_error_tracebacks()
    context = TaskRunContext.get()
    if context is not None:
        prefect_internals.stop_persisting_result(context)


def is_input(spec: ParamSpec | None, value: Any) -> bool:
    """Data parameters, and any value produced by an upstream task, are inputs; the rest are parameters."""
    return (spec is not None and spec.is_data) or isinstance(value, (OutputRef, TaskOutputs))


def describe_inputs(call: "BoundCall") -> list[dict[str, Any]]:
    """The manifest's `inputs`: each data input's fingerprint, URI (credentials removed) and producer."""
    task, signature = call.task, call.signature
    described = []
    for name, value in call.arguments.items():
        if not is_input(task.param_map.get(name), value):
            continue
        entry: dict[str, Any] = {"name": name, "fingerprint": signature.params.get(name), "uri": None}
        if isinstance(value, OutputRef) and isinstance(value.source, TaskOutputs):
            src = value.source
            entry.update(producer_task=src.task_name, producer_signature=src.signature, output=value.name)
            stored = src.stored.get(value.name)
            if stored is not None:
                entry.update(uri=stored.uri, format=stored.format, type_key=stored.type_key)
        elif name in call.inputs or isinstance(value, Target):  # read from storage: its normalized URI
            entry["uri"] = redact(call.inputs.get(name, value).uri)
        elif isinstance(value, (str, pathlib.PurePath)):
            entry["uri"] = redact(str(value))
        described.append(entry)
    return described


def parameters_of(call: "BoundCall") -> dict[str, Any]:
    """The call's arguments that are not inputs (what the manifest records as parameters)."""
    return {n: v for n, v in call.arguments.items() if not is_input(call.task.param_map.get(n), v)}


__all__ = ["load_inputs", "load_input", "as_input_error", "fail_as_input_error", "is_input", "describe_inputs",
           "parameters_of"]

