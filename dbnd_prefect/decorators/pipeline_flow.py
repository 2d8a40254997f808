"""The object `@pipeline` makes: a function that wires tasks, run as a Prefect flow (engine/flows.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from dbnd_prefect.definitions import registry
from dbnd_prefect.engine.calling import call_pipeline
from dbnd_prefect.engine.flows import PipelineFlow

if TYPE_CHECKING:
    from dbnd_prefect.api.results import RunResult


class DbndPipeline(PipelineFlow):
    """A function that wires tasks, run as a Prefect flow."""

    def __init__(self, func: Callable[..., Any], **prefect_options: Any) -> None:
        super().__init__(func, **prefect_options)
        registry.register(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run the pipeline and return its real values."""
        __tracebackhide__ = True  # noqa: F841 - pytest and IPython end the traceback at the caller's line
        return call_pipeline(self, args, kwargs)

    def run(self, *args: Any, **options: Any) -> "RunResult":
        """Run this pipeline as `dbnd_prefect.run` does (`set=`, `override=`, `env=`, `conf_files=`,
        `task_version=`), call arguments given positionally or as `set` values; its `RunResult`."""
        from dbnd_prefect.api.run import run_with_arguments

        return run_with_arguments(self, args, options)


__all__ = ["DbndPipeline"]
