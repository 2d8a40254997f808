"""A task call resolved once: the task, its arguments, their signature and its cache key.

A call is bound where it is made (a pipeline body, a task body, a top-level call): arguments are taken
from the call site and the configuration and coerced, and the signature is computed from them — an
upstream output counts by its producer's signature, which is known as soon as the producer is
submitted. The `BoundCall` then travels to Prefect as the task run's one parameter: the cache policy
reads its key, Prefect resolves the upstream futures inside it, and the task body loads and writes
with it. Nothing is bound, fingerprinted or signed twice. A call pickles (for task runners that run
tasks in other processes, such as Dask): its task by reference, its run's settings with it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from dbnd_prefect.fingerprint.signature import Signature
    from dbnd_prefect.run_context import RunContext


CALL_OPTIONS = ("task_version", "task_name", "override", "task_target_date")


@dataclasses.dataclass(frozen=True)
class CallOptions:
    """What a call site may say about one call besides its arguments, as in the reference:
    `my_task(x, task_version="2", task_name="daily", override={"alpha": 0.1}, task_target_date="2024-01-31")`."""

    task_version: str | None = None
    task_name: str | None = None  # the Prefect task run's name
    override: Mapping[str, Any] | None = None  # parameter values that beat every other source
    target_date: str | None = None  # ISO date


NO_OPTIONS = CallOptions()


def split_call_options(task: Any, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], CallOptions]:
    """The call's keyword arguments without the call options, and those options (a parameter of the
    task with an option's name stays a parameter)."""
    options = {k: kwargs[k] for k in CALL_OPTIONS if k in kwargs and k not in task.param_map}
    if not options:
        return dict(kwargs), NO_OPTIONS
    from dbnd_prefect.errors import ParameterError
    from dbnd_prefect.params import parse_date

    rest = {k: v for k, v in kwargs.items() if k not in options}
    override = options.get("override")
    if override is not None and not isinstance(override, Mapping):
        raise ParameterError(f"{task.name}(override=...) takes a mapping of parameter values, got {override!r}",
                             hint=f"e.g. {task.name}(..., override={{'{next(iter(task.param_map), 'param')}': value}})")
    date = options.get("task_target_date")
    version = options.get("task_version")
    return rest, CallOptions(
        task_version=None if version is None else str(version),
        task_name=options.get("task_name"),
        override=override,
        target_date=None if date is None else parse_date(task.name, "task_target_date", date).isoformat(),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class BoundCall:
    """One call of a dbnd task, resolved: what the task run receives from Prefect."""

    task: Any  # the DbndTask
    arguments: dict[str, Any]
    signature: "Signature"
    record_key: str  # the Prefect cache key: the signature's record in the run's storage
    run: "RunContext | None" = None  # the run it belongs to, for a task body in another process
    run_name: str | None = None  # the Prefect task run's name, when the call site named it

    @property
    def digest(self) -> str:
        return self.signature.digest

    def __repr__(self) -> str:
        return f"<call of {getattr(self.task, 'name', self.task)} {self.signature.short}>"


def bind_call(task: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], run: "RunContext") -> BoundCall:
    """Resolve a call of `task` in `run`: arguments by the precedence rule, then its signature."""
    kwargs, options = split_call_options(task, kwargs)
    arguments = task.bind(args, kwargs, run)
    if options.override:
        arguments.update(task.overriding(options.override))
    return call_with(task, arguments, run, options)


def call_with(task: Any, arguments: dict[str, Any], run: "RunContext", options: CallOptions = NO_OPTIONS) -> BoundCall:
    """The call of `task` with `arguments` already bound (by the precedence rule) in `run`."""
    signature = task.signature_for(arguments, run, options)
    return BoundCall(task, arguments, signature, run.storage.record_key(signature.digest), run, options.task_name)
