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

    def holds(self, name: str) -> bool:
        """Whether output `name`'s value is in this process's memory (else it is loaded from its target)."""
        return name in self._values

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

        if stored.type_key == "pathlib.Path":  # a file the task wrote itself: its (local) path
            value = Target(stored.uri).local_path()
        else:
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

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to another process (a Dask worker), a reference to a task run's future becomes a reference to
        # its cache record in the data root: the runner's future does not travel (see `remote_upstreams`).
        source = self.source
        task_run_id = None if isinstance(source, TaskOutputs) else getattr(source, "task_run_id", None)
        if task_run_id is not None and self.signature:
            source = RecordedOutputs(str(task_run_id), self.signature)
        return (OutputRef, (source, self.name, self.signature))

    def __repr__(self) -> str:
        return f"<output '{self.name}' of {getattr(self.source, 'task_name', None) or self.source!r}>"


@dataclasses.dataclass(frozen=True)
class RecordedOutputs:
    """The outputs of a task run that ran in another process, read from its cache record in the run's data
    root: how a task on one Dask worker gets the outputs of its upstream task from another."""

    task_run_id: str
    signature: str

    def result(self) -> TaskOutputs:
        from dbnd_prefect.errors import DbndError
        from dbnd_prefect.context import current_run

        run = current_run()
        storage = run.storage if run is not None else None
        try:
            record = storage.record_reader().read(storage.record_key(self.signature)) if storage else None
        except Exception:  # noqa: BLE001 - any unreadable record is the same problem for the user
            record = None
        if record is None or not isinstance(record.result, TaskOutputs):
            raise DbndError(f"the outputs of upstream task run {self.task_run_id} are not recorded in the data root",
                            hint="a task on another worker reads its inputs from there: keep upstream tasks "
                                 "versioned (not versioned=False) and the data root shared")
        return record.result


def remote_upstreams(value: Any) -> list[Any]:
    """The futures of upstream task runs inside `value` (a call's arguments) that run in other processes
    (e.g. Dask): given to Prefect as `wait_for`, so the runner starts the task only after them."""
    from prefect.futures import PrefectConcurrentFuture, PrefectFuture

    found: list[Any] = []

    def visit(item: Any) -> None:
        if isinstance(item, OutputRef):
            source = item.source  # the thread pool's futures are resolved by Prefect itself, in this process
            if isinstance(source, PrefectFuture) and not isinstance(source, PrefectConcurrentFuture):
                found.append(source)
        elif isinstance(item, (list, tuple, set)):
            for inner in item:
                visit(inner)
        elif isinstance(item, dict):
            for inner in item.values():
                visit(inner)

    visit(value)
    return found


def resolve_refs(value: Any) -> Any:
    """Replace output references (and futures) anywhere in a return value by their values."""
    if isinstance(value, OutputRef):
        return value.result()
    if isinstance(value, TaskOutputs):
        return value.value()
    if hasattr(value, "result") and hasattr(value, "task_run_id") and hasattr(value, "wait"):
        return resolve_refs(value.result())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(resolve_refs(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_refs(v) for v in value)
    if isinstance(value, dict):
        return {k: resolve_refs(v) for k, v in value.items()}
    return value
