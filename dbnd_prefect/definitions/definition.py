"""What a task or pipeline is, before anything runs: its function, name, identity, parameters and outputs.

A definition is pure: it holds what `@task` and `@pipeline` read off the function and their options, and
checks them at decoration. Running is the engine's (engine/), binding a call the binder's (calls.py).
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping, Sequence

from dbnd_prefect import identity
from dbnd_prefect.definitions.coerce import coerce
from dbnd_prefect.definitions.spec import OutputSpec, ParamSpec, file_outputs, output_specs, param_specs
from dbnd_prefect.errors import ParameterError, suggest

TASK_OPTIONS = ("result", "task_version", "output_formats", "non_significant", "versioned", "task_env")


def relaxed(sig: inspect.Signature) -> inspect.Signature:
    """`sig` with positional-only parameters made positional-or-keyword, so values can be given by name
    (from configuration, `--set`, Prefect's parameter binding)."""
    return sig.replace(parameters=[
        p.replace(kind=p.POSITIONAL_OR_KEYWORD) if p.kind == p.POSITIONAL_ONLY else p
        for p in sig.parameters.values()
    ])


def _check_supported(name: str, func: Callable[..., Any], sig: inspect.Signature) -> None:
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise ParameterError(f"{name}: async functions are not supported as dbnd tasks or pipelines yet",
                             hint="make it a plain `def`; independent tasks in a pipeline already run concurrently")
    variadic = [p for p in sig.parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if variadic:
        shown = ", ".join(("*" if p.kind == p.VAR_POSITIONAL else "**") + p.name for p in variadic)
        raise ParameterError(f"{name}: {shown} cannot be configured, fingerprinted or stored",
                             hint="use a list or dict parameter instead")


class Definition:
    """What tasks and pipelines share: the function, its name and identity, its typed parameters."""

    kind = "task"
    func: Callable[..., Any]
    name: str
    params: list[ParamSpec]
    param_map: dict[str, ParamSpec]
    task_id: str
    call_signature: inspect.Signature  # the parameters a call takes, by position or by name

    def _define(self, func: Callable[..., Any], name: str | None, params: list[ParamSpec] | None = None) -> None:
        self.func = func
        self.name = name or func.__name__
        self.params = param_specs(func) if params is None else params
        self.param_map = {p.name: p for p in self.params}
        self.task_id = identity.identity_of(func)  # the same wherever the module was imported from
        self._func_signature = inspect.signature(func)
        self.call_signature = relaxed(self._func_signature)
        _check_supported(self.name, func, self._func_signature)

    def call_function(self, arguments: Mapping[str, Any]) -> Any:
        """Call the undecorated function, honouring positional-only parameters."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for p in self._func_signature.parameters.values():
            if p.name in arguments:
                if p.kind == p.POSITIONAL_ONLY:
                    args.append(arguments[p.name])
                else:
                    kwargs[p.name] = arguments[p.name]
        return self.func(*args, **kwargs)

    def overriding(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`override={...}` of a call: values of this definition's parameters, coerced, beating every other source."""
        out = {}
        for key, value in values.items():
            name = key[len(self.name) + 1:] if key.startswith(self.name + ".") else key
            spec = self.param_map.get(name)
            if spec is None:
                raise ParameterError(f"{self.name}(override=...): unknown parameter '{key}'{suggest(name, self.param_map)}",
                                     hint=f"parameters of {self.name}: {', '.join(self.param_map) or 'none'}")
            out[name] = coerce(self.name, spec, value)
        return out


class TaskDefinition(Definition):
    """A typed function whose outputs are written to typed targets, versioned by signature."""

    kind = "task"

    def _define_task(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        result: str | Sequence[str] | None = None,
        task_version: str | None = None,
        output_formats: Mapping[str, str] | str | None = None,
        non_significant: Sequence[str] = (),
        versioned: bool = True,
        task_env: str | None = None,
    ) -> None:
        self._define(func, name)
        if isinstance(output_formats, str):
            names = [o.name for o in output_specs(func, result)]
            output_formats = {n: output_formats for n in names}
        files = file_outputs(func)
        returned = output_specs(func, result, output_formats)
        if files and result is None and inspect.signature(func).return_annotation in (None, "None"):
            returned = []  # `-> None`: the task's outputs are the files it writes
        self.outputs: list[OutputSpec] = [*returned, *files]
        if files and not versioned:
            raise ParameterError(f"@task {self.name}: output files ({', '.join(f.name for f in files)}) are stored "
                                 "and versioned; versioned=False keeps outputs in memory only",
                                 hint="drop versioned=False, or return the value instead of writing a file")
        if files:  # callers never pass them: they are not parameters of a call
            self.call_signature = self.call_signature.replace(parameters=[
                p for p in self.call_signature.parameters.values() if p.name not in {f.name for f in files}])
        self.task_version = None if task_version is None else str(task_version)
        if task_env is not None and (not isinstance(task_env, str) or not task_env or not versioned):
            raise ParameterError(f"@task {self.name}: task_env={task_env!r} " + (
                "must name an environment profile" if versioned else
                "runs the task in another process, which hands its outputs back through storage; "
                "versioned=False keeps them in memory only"),
                hint="e.g. task_env=\"k8s\" (see dbnd show-env)" if versioned else "drop versioned=False")
        self.task_env = task_env  # the environment profile this task runs in (engine/remote_caller.py)
        if isinstance(non_significant, str):
            non_significant = [n.strip() for n in non_significant.split(",") if n.strip()]
        unknown = set(non_significant) - set(self.param_map)
        if unknown:
            raise ParameterError(f"@task {self.name}: non_significant names unknown parameters {sorted(unknown)}")
        self.non_significant = frozenset(non_significant)
        self.versioned = versioned

    @functools.cached_property
    def code_fingerprint(self) -> str:
        """The digest of the task's code and the project code it uses."""
        from dbnd_prefect.fingerprint import fingerprint_code

        return fingerprint_code(self.func)

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def __repr__(self) -> str:
        return f"<dbnd task {self.name}>"


class PipelineDefinition(Definition):
    """A function that wires tasks."""

    kind = "pipeline"

    def _define_pipeline(self, func: Callable[..., Any], name: str | None, result: Any = None,
                         params: list[ParamSpec] | None = None) -> None:
        self._define(func, name, params)
        # names of what the pipeline returns (a tuple is matched by position), for run results and the CLI
        self.result_names = [o.name for o in output_specs(func, result)] if result is not None else None

    def __repr__(self) -> str:
        return f"<dbnd pipeline {self.name}>"


def is_definition(obj: Any) -> bool:
    """Whether `obj` is a dbnd task or pipeline."""
    return isinstance(obj, Definition)


__all__ = ["TASK_OPTIONS", "Definition", "TaskDefinition", "PipelineDefinition", "is_definition", "relaxed"]
