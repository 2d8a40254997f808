"""`@task` and `@pipeline`: typed functions as Prefect tasks and flows, called from anywhere.

The objects they make are thin: a definition (definitions/) that hands each call to the engine
(engine/calling.py), which binds it once and runs it on Prefect, and `.run()` for running with
configuration as `dbnd run` does (api/run.py). A pipeline is a Prefect flow (pipeline_flow.py), except in
a command that only reads definitions before Prefect is imported (`dbnd plan`, `show-*`, `--help`), where it
is a `PipelineOutline`: the same definition without the flow, so the command does not import Prefect.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence, TypeVar, overload

from typing import TYPE_CHECKING

from dbnd_prefect.definitions import registry
from dbnd_prefect.definitions.definition import TASK_OPTIONS, PipelineDefinition, TaskDefinition
from dbnd_prefect.engine.calling import call_pipeline, call_task, map_task, single_task_flow
from dbnd_prefect.engine.prefect_tasks import check_options, make_prefect_task

if TYPE_CHECKING:
    import prefect

    from dbnd_prefect.api.results import RunResult
    from dbnd_prefect.engine.flows import PipelineFlow
    from dbnd_prefect.decorators.pipeline_flow import DbndPipeline

F = TypeVar("F", bound=Callable[..., Any])


def _run(obj: Any, args: tuple[Any, ...], options: dict[str, Any]) -> "RunResult":
    from dbnd_prefect.api.run import run_with_arguments

    return run_with_arguments(obj, args, options)


class DbndTask(TaskDefinition):
    """A typed function run as a Prefect task, with its outputs written to typed targets."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        result: str | Sequence[str] | None = None,
        task_version: str | None = None,
        output_formats: Mapping[str, str] | str | None = None,
        non_significant: Sequence[str] = (),
        versioned: bool = True,
        task_env: str | None = None,
        **prefect_options: Any,
    ) -> None:
        self._define_task(func, name=prefect_options.pop("name", None), result=result, task_version=task_version,
                          output_formats=output_formats, non_significant=non_significant, versioned=versioned,
                          task_env=task_env)
        if not registry.outlines_only():
            import prefect

            check_options("task", self.name, prefect_options, prefect.Task, TASK_OPTIONS)
        self._prefect_options = prefect_options
        functools.update_wrapper(self, func)
        registry.register(self)

    @functools.cached_property
    def prefect_task(self) -> "prefect.Task":
        """The Prefect task that runs this task's body (made on first use)."""
        return make_prefect_task(self, self._prefect_options)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled by reference (module and name) where the module can be imported, so a task call sent
        to another process (a Dask worker) finds the same definition there; by value otherwise."""
        module, qualname = getattr(self.func, "__module__", None), self.func.__qualname__
        if module and module != "__main__" and "<locals>" not in qualname:
            return (registry.import_by_name, (module, qualname, self.task_id))
        return super().__reduce_ex__(protocol)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_single_task_flow"}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # noqa: F841 - pytest and IPython end the traceback at the caller's line
        return call_task(self, args, kwargs)

    def map(self, *args: Any, **kwargs: Any) -> list[Any]:
        """One call of this task per element, inside a pipeline: Prefect's `Task.map` for dbnd tasks.

        Iterable arguments are zipped (all of the same length); strings, bytes, mappings, other
        values and `prefect.unmapped(x)` go whole to every call. An upstream output is waited for and
        mapped over like any other value. Returns what each call returns (output references), in order.
        """
        return map_task(self, args, kwargs)

    def run(self, *args: Any, **options: Any) -> Any:
        """Run this task as `dbnd_prefect.run` does (`set=`, `override=`, `env=`, `conf_files=`,
        `task_version=`), call arguments given positionally or as `set` values; its `RunResult`."""
        return _run(self, args, options)

    def as_pipeline(self) -> "PipelineFlow":
        """This task as a flow of its own: what a top-level call or `dbnd run TASK` runs."""
        return single_task_flow(self)


# What a module may ask of its pipeline at import time that only a Prefect flow has
_FLOW_METHODS = frozenset({
    "with_options", "serve", "aserve", "deploy", "to_deployment", "ato_deployment", "visualize", "validate_parameters",
    "on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running",
})


class PipelineOutline(PipelineDefinition):
    """A pipeline as a command that only reads definitions sees it: its parameters, outputs and body, no flow.
    Calling it (a nested pipeline while planning) runs its body as a planned pipeline does."""

    def __init__(self, func: Callable[..., Any], **prefect_options: Any) -> None:
        self._options = dict(prefect_options)
        self._define_pipeline(func, prefect_options.pop("name", None), prefect_options.pop("result", None),
                              prefect_options.pop("_params", None))
        self.description = prefect_options.get("description") or func.__doc__
        functools.update_wrapper(self, func, updated=())
        registry.register(self)

    def __getattr__(self, name: str) -> Any:
        """What only a Prefect flow has (`with_options`, `serve`, `to_deployment`, ... used at import time): from the
        pipeline's real `DbndPipeline`, made then (it imports Prefect and takes the outline's place)."""
        if name not in _FLOW_METHODS or "_options" not in self.__dict__:
            raise AttributeError(name)
        flow = self.__dict__.get("_flow")
        if flow is None:
            from dbnd_prefect.decorators.pipeline_flow import DbndPipeline

            flow = self.__dict__["_flow"] = DbndPipeline(self.func, **self._options)
        return getattr(flow, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # noqa: F841 - pytest and IPython end the traceback at the caller's line
        return call_pipeline(self, args, kwargs)

    def run(self, *args: Any, **options: Any) -> "RunResult":
        """As `DbndPipeline.run`."""
        return _run(self, args, options)


def _pipeline(func: Callable[..., Any], options: dict[str, Any]) -> "DbndPipeline | PipelineOutline":
    if registry.outlines_only():
        return PipelineOutline(func, **options)
    from dbnd_prefect.decorators.pipeline_flow import DbndPipeline

    return DbndPipeline(func, **options)


@overload
def task(func: F) -> DbndTask: ...
@overload
def task(func: None = None, **options: Any) -> Callable[[F], DbndTask]: ...
def task(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a typed function a task: `@task` or `@task(result="train, test", task_version="2", retries=2)`.

    Options: `result` (output names), `task_version`, `output_formats` (a format, or one per output),
    `non_significant` (parameters left out of the signature), `task_env` (an environment profile the task
    runs in, as a deployment run on its work pool), and Prefect task options (name, tags, retries,
    retry_delay_seconds, timeout_seconds, log_prints, ...).
    """
    if func is None:
        return lambda f: DbndTask(f, **options)
    return DbndTask(func, **options)


@overload
def pipeline(func: F) -> DbndPipeline: ...
@overload
def pipeline(func: None = None, **options: Any) -> Callable[[F], DbndPipeline]: ...
def pipeline(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """Make a function that wires tasks a pipeline (a Prefect flow): `@pipeline` or `@pipeline(name=...)`.

    Prefect flow options pass through (name, description, retries, timeout_seconds, log_prints,
    task_runner, ...).
    """
    if func is None:
        return lambda f: _pipeline(f, options)
    return _pipeline(func, options)


def __getattr__(name: str) -> Any:
    if name == "DbndPipeline":  # a Prefect flow class: Prefect is imported when it is asked for
        from dbnd_prefect.decorators.pipeline_flow import DbndPipeline

        return DbndPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DbndTask", "DbndPipeline", "PipelineOutline", "task", "pipeline"]
