"""Hand large in-memory values to a flow in the same process without serialising them.

Prefect sends flow parameters to its API as JSON; a DataFrame given to a flow that way costs about
a second per million rows. A top-level or nested pipeline call therefore swaps such values for a
short token, and the flow body swaps them back. Tokens live only for the duration of the call.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from typing import Any, Iterator, Mapping

PREFIX = "dbnd-handoff://"
# The values handed to the flows called in this context (Prefect runs a sync flow body in the caller's
# thread and context, so the body finds them here).
_handed: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("dbnd_handoff")


def _needs_handoff(value: Any) -> bool:
    from dbnd_prefect.outputs import OutputRef, TaskOutputs

    if isinstance(value, (OutputRef, TaskOutputs)):
        return True
    return type(value).__module__.split(".")[0] in ("pandas", "numpy", "pyarrow", "pyspark", "polars")


@contextlib.contextmanager
def handed_off(arguments: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Arguments with large in-memory values replaced by tokens, valid inside the block."""
    values = dict(_handed.get({}))
    replaced: dict[str, Any] = {}
    for name, value in arguments.items():
        if _needs_handoff(value):
            token = PREFIX + uuid.uuid4().hex
            values[token] = value
            replaced[name] = token
        else:
            replaced[name] = value
    reset = _handed.set(values)
    try:
        yield replaced
    finally:
        _handed.reset(reset)


def take_back(value: Any) -> Any:
    """The original value behind a token; any other value unchanged."""
    if isinstance(value, str) and value.startswith(PREFIX):
        values = _handed.get({})
        if value in values:
            return values[value]
        raise RuntimeError(f"{value} was handed to a flow in another process; pass a path or URI instead")
    return value
