"""The Prefect flow of a dbnd pipeline.

`PipelineFlow` is a Prefect flow (so `prefect deploy`, `serve` and the UI know it) whose parameters are
the pipeline's own plus `TASK.PARAM` settings for the tasks it calls (flow_signature.py), and whose body
runs the pipeline in a scope (pipeline_body.py). Calling it goes through engine/calling.py, which binds
the call once and hands it to the body (`prefect.Flow.__call__` is what runs it).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import prefect

from dbnd_prefect.definitions.definition import PipelineDefinition
from dbnd_prefect.definitions.spec import ParamSpec
from dbnd_prefect.engine.flow_signature import pipeline_flow_signature, run_flow_body
from dbnd_prefect.engine.pipeline_body import run_pipeline_body
from dbnd_prefect.engine.prefect_tasks import check_options
from dbnd_prefect.engine.runners import default_task_runner


class PipelineFlow(PipelineDefinition, prefect.Flow):
    """A function that wires tasks, run as a Prefect flow."""

    def __init__(self, func: Callable[..., Any], *, _params: list[ParamSpec] | None = None,
                 **prefect_options: Any) -> None:
        result = prefect_options.pop("result", None)
        self._define_pipeline(func, prefect_options.get("name"), result, _params)
        check_options("pipeline", self.name, prefect_options, prefect.Flow, ("result",))
        loose = pipeline_flow_signature(self)  # with the TASK.PARAM settings deployments may give
        pipeline = self

        def body(*args: Any, **kwargs: Any) -> Any:
            return run_flow_body(pipeline, loose, args, kwargs,
                                 lambda arguments: run_pipeline_body(pipeline, arguments))

        body.__signature__ = loose  # type: ignore[attr-defined]
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(body, attr, getattr(func, attr, None))
        prefect_options.setdefault("name", self.name)
        prefect_options.setdefault("validate_parameters", False)
        prefect_options.setdefault("persist_result", False)
        self.names_task_runner = prefect_options.get("task_runner") is not None  # else: the parent's, when nested
        if not self.names_task_runner:
            prefect_options["task_runner"] = default_task_runner()
        prefect.Flow.__init__(self, fn=body, **prefect_options)
        functools.update_wrapper(self, func, updated=())

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters as the Prefect API records them on the flow run: credentials removed from text (a URI's
        user info, keys in query strings), secret-named values masked; the run itself gets the real values."""
        from dbnd_prefect.history.manifest import mask_secret_values

        return mask_secret_values(super().serialize_parameters(parameters))

    def __repr__(self) -> str:
        return f"<dbnd pipeline {self.name}>"


__all__ = ["PipelineFlow"]
