"""The fingerprint of one input of a task call, without loading data that is still on storage."""

from __future__ import annotations

import os
from typing import Any

from dbnd_prefect.errors import DbndError


def fingerprint_input(spec: Any, value: Any, full_content: bool = False) -> str:
    """Fingerprint one parameter value without loading data that is still on storage."""
    from dbnd_prefect.fingerprint import fingerprint_value
    from dbnd_prefect.outputs import OutputRef, TaskOutputs
    from dbnd_prefect.targets import Target

    if isinstance(value, (OutputRef, TaskOutputs)):
        return _output_fingerprint(value)
    is_data = spec is not None and spec.is_data
    if is_data and isinstance(value, (str, os.PathLike)):  # the binder gives data inputs as their Targets
        from dbnd_prefect.definitions.spec import input_target

        try:
            value = input_target(spec, value)
        except DbndError:  # an unknown forced format: the task run reports it, with its context
            value = Target(value)
    if isinstance(value, Target):
        from dbnd_prefect.redaction import redact

        uri = redact(value.uri)  # the fingerprint is recorded in manifests: no credentials in it
        try:
            stamp = value.fingerprint(full=full_content)
        except DbndError:  # missing or unreadable: the task run reports it, with its context
            stamp = "unavailable"
        return f"target:{uri}:{stamp}{_read_as(value)}"
    return "value:" + fingerprint_value(_outputs_named(value))


def _read_as(target: Any) -> str:
    """How the input is parsed, when it is not by its extension's defaults: a forced format, load options.

    Part of the fingerprint, so that an input read differently never reuses outputs computed from the
    other reading. Empty for a plain file, which keeps the fingerprints of existing runs.
    """
    from dbnd_prefect.fingerprint import fingerprint_value

    if target._forced is None and not target.load_options:
        return ""
    return ":read=" + fingerprint_value({"format": target._forced, "load_options": target.load_options})


def _output_fingerprint(value: Any) -> str:
    """An upstream output counts by its producer's signature (and the output's name)."""
    from dbnd_prefect.outputs import TaskOutputs

    if isinstance(value, TaskOutputs):
        return f"output:{value.signature}"
    signature = value.signature
    if signature is None:
        source = value.source if isinstance(value.source, TaskOutputs) else value.source.result()
        signature = source.signature
    return f"output:{signature}:{value.name}"


def _outputs_named(value: Any) -> Any:
    """`value` with upstream outputs inside lists, tuples and dicts (fan-in) replaced by their fingerprints."""
    from dbnd_prefect.outputs import OutputRef, TaskOutputs

    if isinstance(value, (OutputRef, TaskOutputs)):
        return _output_fingerprint(value)
    if type(value) in (list, tuple):
        return type(value)(_outputs_named(v) for v in value)
    if type(value) is dict:
        return {k: _outputs_named(v) for k, v in value.items()}
    return value
