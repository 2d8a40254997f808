"""What a task run hands on: its outputs, in memory and where they are stored.

`TaskOutputs` is the value a dbnd task returns to Prefect. In memory it carries the live values,
so the next task in the same process gets them without a round trip through storage; pickled
into Prefect's cache record it keeps only the stored locations, and loads from them on demand.
`OutputRef` names one output of a task run inside a pipeline, before or after it exists; it carries its
producer's signature, so a downstream call is signed without waiting for the producer.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class StoredOutput:
    """Where one output was written and how to read it back."""

    uri: str
    format: str
    type_key: str
    checksum: str | None = None
    bytes: int | None = None


class TaskOutputs:
    """The outputs of one task run, by name."""

    def __init__(
        self,
        task_name: str,
        signature: str,
        names: list[str],
        stored: dict[str, StoredOutput],
        manifest_uri: str | None,
        values: dict[str, Any] | None = None,
    ) -> None:
        self.task_name = task_name
        self.signature = signature
        self.names = names
        self.stored = stored
        self.manifest_uri = manifest_uri
        self._values = dict(values or {})

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_values"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @property
    def in_memory(self) -> bool:
        return len(self._values) == len(self.names)

    def get(self, name: str) -> Any:
        """The value of output `name`, loaded from its target if it is not in memory."""
        if name in self._values:
            return self._values[name]
        stored = self.stored.get(name)
        if stored is None:
            if name in self.names:  # outputs that were None are not stored
                return None
            raise KeyError(f"task '{self.task_name}' has no output '{name}'; outputs are {self.names}")
        from dbnd_prefect.targets import Target

        value = Target(stored.uri, format=stored.format).load(stored.type_key)
        self._values[name] = value
        return value

    def value(self) -> Any:
        """The task's return value as the caller sees it: one value, or a tuple for several outputs."""
        if len(self.names) == 1:
            return self.get(self.names[0])
        return tuple(self.get(n) for n in self.names)

    def __repr__(self) -> str:
        return f"TaskOutputs({self.task_name}, signature={self.signature[:12]}, outputs={self.names})"


@dataclasses.dataclass
class OutputRef:
    """One named output of a task run: `source` is a Prefect future inside a pipeline, or the
    finished `TaskOutputs` once Prefect has resolved it."""

    source: Any
    name: str
    signature: str | None = None  # the producing call's signature, known before it has run

    def result(self) -> Any:
        """Wait for the producing task and return this output's value."""
        source = self.source
        if not isinstance(source, TaskOutputs):
            source = source.result()
        return source.get(self.name)

    def __repr__(self) -> str:
        return f"<output '{self.name}' of {getattr(self.source, 'task_name', None) or self.source!r}>"
