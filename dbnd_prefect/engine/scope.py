"""The task runs a pipeline body submits (its scope), `.map` arguments, and turning references into values."""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, Mapping

from dbnd_prefect.engine.prefect_tasks import prefect_task_for
from dbnd_prefect.errors import ParameterError
from dbnd_prefect.outputs import OutputRef, TaskOutputs, remote_upstreams
from dbnd_prefect.versioning.verify import drop_if_broken

_scope: contextvars.ContextVar["PipelineScope | None"] = contextvars.ContextVar("dbnd_scope", default=None)


def current_scope() -> "PipelineScope | None":
    return _scope.get()


_on_submit: contextvars.ContextVar["Callable[[str, Any], None] | None"] = contextvars.ContextVar(
    "dbnd_on_submit", default=None)


@contextlib.contextmanager
def observe_submissions(callback: "Callable[[str, Any], None]") -> Iterator[None]:
    """Call `callback(task_name, prefect_future)` for each task run a pipeline submits inside the block
    (the CLI's progress display). The callback runs on the submitting thread: it must be quick and not raise."""
    token = _on_submit.set(callback)
    try:
        yield
    finally:
        _on_submit.reset(token)


class PipelineScope:
    """Collects the task runs a pipeline body submits, so the pipeline can wait for all of them."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []
        self._by_key: dict[Any, Any] = {}

    @classmethod
    @contextlib.contextmanager
    def enter(cls) -> Iterator["PipelineScope"]:
        scope = cls()
        token = _scope.set(scope)
        try:
            yield scope
        finally:
            _scope.reset(token)

    dry = False

    def submit(self, call: Any) -> Any:
        """Start the task run of a bound call on the pipeline's task runner; its future.

        A versioned call with the signature of an earlier call in the same pipeline gets that call's
        future: same signature, same outputs, so one run serves both.
        """
        task, run = call.task, call.run
        key = call.digest if task.versioned else None
        if key is not None and key in self._by_key:
            return self._by_key[key]
        if key is not None:
            drop_if_broken(call, run)
        future = prefect_task_for(task, run, call.run_name).submit(
            call=call, wait_for=remote_upstreams(call.arguments) or None)
        self.calls.append((task, future))
        observer = _on_submit.get()
        if observer is not None:
            observer(task.name, future)
        if key is not None:
            self._by_key[key] = future
        return future

    def wait_all(self) -> None:
        """Wait for every submitted task; raise the first failure's own exception."""
        for _, future in self.calls:
            future.wait()
        for _, future in self.calls:
            state = future.state
            if state.is_failed() or state.is_crashed():
                future.result()  # raises the task's exception

    def summaries(self) -> list[dict[str, Any]]:
        """One line of facts per task run: name, Prefect state, signature and output locations."""
        out = []
        for task, future in self.calls:
            future.wait()
            state = future.state
            entry: dict[str, Any] = {"task": task.name, "state": state.name, "task_run_id": str(future.task_run_id)}
            if state.is_completed():
                outputs = future.result()
                if isinstance(outputs, TaskOutputs):
                    entry["signature"] = outputs.signature
                    entry["outputs"] = {n: s.uri for n, s in outputs.stored.items()}
                    entry["manifest"] = outputs.manifest_uri
            out.append(entry)
        return out


def map_arguments(task_name: str, bound: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The arguments of each call a `.map` makes: iterables zipped, the rest (and `unmapped(x)`) whole."""
    from prefect.utilities.annotations import unmapped

    scope = current_scope()
    mapped: dict[str, list[Any]] = {}
    fixed: dict[str, Any] = {}
    for name, value in bound.items():
        if isinstance(value, OutputRef):
            if scope is not None and scope.dry:
                raise ParameterError(f"{task_name}.map() over {value!r} cannot be planned: its length is "
                                     "known only once it has run", hint="run the pipeline instead of planning it")
            value = value.result()
        if isinstance(value, unmapped):
            fixed[name] = value.unwrap()
        elif isinstance(value, (str, bytes, Mapping)) or not _is_iterable(value):
            fixed[name] = value
        else:
            mapped[name] = list(value)
    if not mapped:
        raise ParameterError(f"{task_name}.map() got no iterable argument to map over",
                             hint=f"pass a list, e.g. {task_name}.map([...]); or call {task_name}(...) once")
    lengths = {name: len(items) for name, items in mapped.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise ParameterError(f"{task_name}.map(): iterable arguments differ in length ({shown})",
                             hint="give them the same length, or wrap the fixed ones in prefect.unmapped(...)")
    count = next(iter(lengths.values()))
    return [{**fixed, **{name: items[i] for name, items in mapped.items()}} for i in range(count)]


def _is_iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True
