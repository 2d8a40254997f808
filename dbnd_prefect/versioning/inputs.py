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

    if isinstance(value, OutputRef):
        source = value.source
        if isinstance(source, TaskOutputs):
            return f"output:{source.signature}:{value.name}"
        value = value.result()
    if isinstance(value, TaskOutputs):
        return f"output:{value.signature}"
    if spec is not None and spec.is_data and isinstance(value, (str, os.PathLike)):
        value = Target(value)
    if isinstance(value, Target):
        try:
            return f"target:{value.uri}:{value.fingerprint(full=full_content)}"
        except DbndError:  # missing or unreadable: the task run reports it, with its context
            return f"target:{value.uri}:unavailable"
    return "value:" + fingerprint_value(value)
