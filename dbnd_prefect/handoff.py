"""Hand large in-memory values to a flow in the same process without serialising them.

Prefect sends flow parameters to its API as JSON; a DataFrame given to a flow that way costs about
a second per million rows. A top-level or nested pipeline call therefore swaps such values for a
short token, and the flow body swaps them back. Tokens live only for the duration of the call.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any, Iterator, Mapping

PREFIX = "dbnd-handoff://"
_values: dict[str, Any] = {}
_lock = threading.Lock()


def _needs_handoff(value: Any) -> bool:
    from dbnd_prefect.outputs import OutputRef, TaskOutputs

    if isinstance(value, (OutputRef, TaskOutputs)):
        return True
    return type(value).__module__.split(".")[0] in ("pandas", "numpy", "pyarrow", "pyspark", "polars")


@contextlib.contextmanager
def handed_off(arguments: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Arguments with large in-memory values replaced by tokens, valid inside the block."""
    tokens: list[str] = []
    replaced: dict[str, Any] = {}
    for name, value in arguments.items():
        if _needs_handoff(value):
            token = PREFIX + uuid.uuid4().hex
            with _lock:
                _values[token] = value
            tokens.append(token)
            replaced[name] = token
        else:
            replaced[name] = value
    try:
        yield replaced
    finally:
        with _lock:
            for token in tokens:
                _values.pop(token, None)


def take_back(value: Any) -> Any:
    """The original value behind a token; any other value unchanged."""
    if isinstance(value, str) and value.startswith(PREFIX):
        with _lock:
            if value in _values:
                return _values[value]
        raise RuntimeError(f"{value} was handed to a flow in another process; pass a path or URI instead")
    return value
