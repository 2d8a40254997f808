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
    if spec is not None and spec.is_data and isinstance(value, (str, os.PathLike)):
        value = Target(value)
    if isinstance(value, Target):
        from dbnd_prefect.redaction import redact

        uri = redact(value.uri)  # the fingerprint is recorded in manifests: no credentials in it
        try:
            return f"target:{uri}:{value.fingerprint(full=full_content)}"
        except DbndError:  # missing or unreadable: the task run reports it, with its context
            return f"target:{uri}:unavailable"
    return "value:" + fingerprint_value(_outputs_named(value))


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
