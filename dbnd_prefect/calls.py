"""The one binder: a call of a task or pipeline resolved once into a `BoundCall`.

A call is bound where it is made (a pipeline body, a task body, a top-level call, `dbnd run`): each
parameter's value is taken by the precedence rule (--override > call site > configuration > default),
version selectors are resolved, text is coerced to the declared type, and data inputs become their
`Target`s. For a task the call is then signed: an upstream output counts by its producer's signature,
known as soon as the producer is submitted. The `BoundCall` travels to Prefect as the task run's one
parameter: the cache policy reads its key, Prefect resolves the upstream futures inside it, and the task
body loads and writes with it. Nothing is bound, coerced, fingerprinted or signed twice: configured values
are coerced once per run and task (kept on the run), and a call pickles (for task runners in other
processes, such as Dask) with its task by reference and its run's settings.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Mapping

from dbnd_prefect import layout
from dbnd_prefect.config.settings import task_values
from dbnd_prefect.definitions.coerce import check_required, coerce, parse_date
from dbnd_prefect.definitions.spec import input_target
from dbnd_prefect.errors import DbndError, ParameterError
from dbnd_prefect.targets import Target
from dbnd_prefect.versioning.call_signature import sign
from dbnd_prefect.versioning.selectors import is_selector, resolve_selector

if TYPE_CHECKING:
    from dbnd_prefect.config.model import ConfigValue
    from dbnd_prefect.context import RunContext
    from dbnd_prefect.fingerprint.signature import Signature

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


@dataclasses.dataclass(frozen=True, eq=False)
class BoundCall:
    """One call of a dbnd task or pipeline, resolved: what the task run receives from Prefect."""

    task: Any  # the definition (a DbndTask or DbndPipeline)
    arguments: dict[str, Any]  # parameter values as bound (data inputs as given: a path, URI or value)
    run: "RunContext | None" = None  # the run it belongs to, for a task body in another process
    options: CallOptions = NO_OPTIONS
    inputs: dict[str, Target] = dataclasses.field(default_factory=dict)  # data inputs on storage, as Targets
    signature: "Signature | None" = None  # tasks only
    record_key: str | None = None  # the Prefect cache key: the signature's record in the run's storage
    output_dir: str | None = None  # where this call's outputs go (versioned tasks)

    @property
    def digest(self) -> str:
        return self.signature.digest if self.signature is not None else ""

    @property
    def run_name(self) -> str | None:
        """The Prefect task run's name, when the call site named it."""
        return self.options.task_name

    def loadable(self) -> dict[str, Any]:
        """The arguments with each data input on storage as its Target (what the body loads from)."""
        return {**self.arguments, **self.inputs}

    def __repr__(self) -> str:
        shown = f" {self.signature.short}" if self.signature is not None else ""
        return f"<call of {getattr(self.task, 'name', self.task)}{shown}>"


def split_call_options(task: Any, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], CallOptions]:
    """The call's keyword arguments without the call options, and those options (a parameter of the
    task with an option's name stays a parameter)."""
    options = {k: kwargs[k] for k in CALL_OPTIONS if k in kwargs and k not in task.param_map}
    if not options:
        return dict(kwargs), NO_OPTIONS
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


# ----- configured values, coerced once per run -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Configured:
    """A parameter value from configuration, coerced, with where it came from."""

    value: Any
    found: "ConfigValue"


def configured_values(definition: Any, run: "RunContext") -> tuple[dict[str, Configured], dict[str, Configured]]:
    """(configured values, --override values) of `definition`'s parameters in `run`, coerced once per run.

    A value that does not coerce is a ParameterError naming its source (`at dbnd.toml:3`).
    """
    key = f"{definition.name}\0{definition.task_id}"
    found = run.configured.get(key)
    if found is None:
        sections = task_values(run.config, definition.name), run.config.overrides_for(definition.name)
        found = run.configured[key] = tuple(
            {name: Configured(_coerced(definition, definition.param_map[name], value), value)
             for name, value in section.items() if name in definition.param_map}
            for section in sections)
    return found


def _coerced(definition: Any, spec: Any, found: "ConfigValue") -> Any:
    try:
        return coerce(definition.name, spec, found.value)
    except ParameterError as exc:
        raise exc.with_suffix(f" at {found.source}") from None


# ----- binding ---------------------------------------------------------------------------------------------


def bind_arguments(definition: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], run: "RunContext"
                   ) -> dict[str, Any]:
    """Parameter values for one call: --override > call site > configuration > default, coerced."""
    try:
        explicit = definition.call_signature.bind_partial(*args, **kwargs).arguments
    except TypeError as exc:
        raise ParameterError(
            f"{definition.name}(): {exc}", hint=f"parameters are {[p.name for p in definition.params]}"
        ) from None
    configured, overrides = configured_values(definition, run)
    values: dict[str, Any] = {}
    for spec in definition.params:
        if spec.name in overrides:
            value, source = overrides[spec.name].value, overrides[spec.name].found.source
        elif spec.name in explicit:
            value, source = coerce(definition.name, spec, explicit[spec.name]), "the call site"
        elif spec.name in configured:
            value, source = configured[spec.name].value, configured[spec.name].found.source
        elif spec.name == "task_target_date" and spec.required:  # the run's partition date, else its run date
            value, source = run.target_date or run.run_date, "run.task_target_date"
        elif spec.name == "task_target_date" and run.target_date is not None:
            value, source = run.target_date, "run.task_target_date"
        elif not spec.required:
            value, source = coerce(definition.name, spec, spec.default), "the parameter's default"
        else:
            continue
        if spec.is_data and isinstance(value, str) and "@" in value and is_selector(value):
            value = selected(definition.name, spec.name, value, run, source)
        values[spec.name] = value
    check_required(definition.name, definition.params, values)
    return values


def selected(task_name: str, parameter: str, selector: str, run: "RunContext", source: str) -> str:
    """The stored URI a version selector (`TASK.OUTPUT@latest`) given to `task_name.parameter` names; a
    ParameterError naming the parameter and where the selector came from when nothing is stored."""
    try:
        return resolve_selector(selector, run.data_root, run.env)
    except ParameterError as exc:
        exc.__suppress_context__ = True
        raise exc.add_context(f"{task_name}.{parameter} (from {source})", task=task_name, parameter=parameter,
                              uri=selector) from None


def bind(definition: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], run: "RunContext",
         options: CallOptions | None = None) -> BoundCall:
    """Resolve a call of `definition` (a task or pipeline) in `run`: its arguments, then, for a task, its
    signature. Call options (`task_version=`, `override=`...) are taken out of `kwargs` unless given."""
    if options is None:
        kwargs, options = split_call_options(definition, kwargs)
    arguments = bind_arguments(definition, args, kwargs, run)
    if options.override:
        arguments.update(definition.overriding(options.override))
    return bound(definition, arguments, run, options)


def bound(definition: Any, arguments: dict[str, Any], run: "RunContext", options: CallOptions = NO_OPTIONS,
          inputs: dict[str, Target] | None = None) -> BoundCall:
    """The call of `definition` with `arguments` already bound (by the precedence rule) in `run`; `inputs`, the
    data inputs' Targets when the caller has made them (`data_inputs`)."""
    inputs = data_inputs(definition, arguments) if inputs is None else inputs
    if definition.kind == "pipeline":
        return BoundCall(definition, arguments, run, options, inputs)
    signature = sign(definition, {**arguments, **inputs}, run, options.task_version, options.target_date)
    return signed(definition, arguments, run, signature, options, inputs)


def signed(task: Any, arguments: dict[str, Any], run: "RunContext", signature: "Signature",
           options: CallOptions = NO_OPTIONS, inputs: dict[str, Target] | None = None) -> BoundCall:
    """The call of `task` with `arguments` and a signature already computed (by the caller of a remote run)."""
    inputs = _task_inputs(task, arguments) if inputs is None else inputs
    date = signature.target_date
    folder = layout.output_dir(run.data_root, run.env, parse_date(task.name, "target date", date)
                               if date else run.run_date, task.name, signature.digest)
    return BoundCall(task, arguments, run, options, inputs, signature, run.storage.record_key(signature.digest),
                     folder)


def data_inputs(definition: Any, arguments: Mapping[str, Any]) -> dict[str, Target]:
    """The data inputs of a call of `definition` given by path, URI or Target, as the Targets read from."""
    if definition.kind == "pipeline":
        return _pipeline_inputs(definition, arguments)
    return _task_inputs(definition, arguments)


def _task_inputs(task: Any, arguments: Mapping[str, Any]) -> dict[str, Target]:
    """The data inputs given by path, URI or Target, as the Targets they are read from (with the parameter's
    format and load options). One whose Target cannot be made (an unknown forced format) is left to the task
    run, which reports it with its context."""
    inputs = {}
    for name, value in arguments.items():
        spec = task.param_map.get(name)
        if spec is not None and spec.is_data and isinstance(value, (str, os.PathLike, Target)):
            try:
                inputs[name] = input_target(spec, value)
            except DbndError:
                pass
    return inputs


def _pipeline_inputs(pipeline: Any, arguments: Mapping[str, Any]) -> dict[str, Target]:
    """A pipeline's data parameters given as text, as Targets (with a forced format) for the tasks it wires."""
    inputs = {}
    for name, value in arguments.items():
        spec = pipeline.param_map.get(name)
        if spec is not None and spec.is_data and isinstance(value, str) and spec.type_key != "pathlib.Path":
            inputs[name] = Target(value, **({"format": spec.data.format} if spec.data and spec.data.format else {}))
    return inputs


__all__ = ["CALL_OPTIONS", "CallOptions", "NO_OPTIONS", "BoundCall", "Configured", "split_call_options",
           "configured_values", "bind_arguments", "selected", "bind", "bound", "signed", "data_inputs"]
