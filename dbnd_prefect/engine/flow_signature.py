"""The parameters a pipeline's Prefect flow declares: what deployments, `--param` and the UI form offer.

A pipeline's flow declares
- the pipeline's own parameters, data parameters typed as `str` (a path, URI or `TASK.OUTPUT@latest`);
- `TASK.PARAM` for the parameters of the tasks the pipeline calls that it does not wire (typed
  non-data parameters, and data parameters with a default), with their types and defaults;
- `run.task_version` and `run.task_target_date`.
Prefect builds the deployment's parameter schema from this signature, so `prefect.yaml`
`parameters: {train_model.alpha: 0.3}`, `prefect deployment run ... --param train_model.alpha=0.3` and
the UI's run form all accept them with schema enforcement on. A flow run that starts a dbnd run turns
the `TASK.PARAM` values it received into the run's "set" configuration layer, as `--set` does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import json
import logging
from typing import Any, Callable, Iterator, Mapping, Optional

from dbnd_prefect.errors import DbndError, ParameterError, suggest
from dbnd_prefect.definitions.introspect import called_tasks
from dbnd_prefect.definitions.spec import ParamSpec

RUN_KEYS = {"run.task_version": "version of every task in this run; `now` forces recomputation",
            "run.task_target_date": "the date the data is for (YYYY-MM-DD); when unset, a scheduled run's date"}
_SOURCE = "flow run parameter"


class SettingParameter(inspect.Parameter):
    """A keyword-only flow parameter named `TASK.PARAM`.

    Not a Python identifier, but a valid keyword for a `**kwargs` call, which is how Prefect passes
    flow parameters; Prefect's schema and binding take the name as it is.
    """

    __slots__ = ()

    def __init__(self, name: str, kind: Any = inspect.Parameter.KEYWORD_ONLY, *, default: Any = inspect.Parameter.empty,
                 annotation: Any = inspect.Parameter.empty) -> None:
        super().__init__(name.replace(".", "__"), kind, default=default, annotation=annotation)
        self._name = name  # type: ignore[misc]


def data_description(spec: ParamSpec) -> str:
    """What a data parameter takes, as the parameter form shows it."""
    what = spec.type_key if spec.annotation is not inspect.Parameter.empty else "data"
    return (f"{what} input: a path or URI (s3://, gs://, az://, ...) loaded by its format, "
            "or a stored version such as TASK.OUTPUT@latest")


def _uri_annotation(spec: ParamSpec) -> Any:
    from typing import Annotated

    from pydantic import WithJsonSchema

    return Annotated[str, WithJsonSchema({"type": "string", "description": data_description(spec)})]


def _json_default(value: Any) -> tuple[bool, Any]:
    """(True, value) when `value` can be shown as a JSON default; (False, None) otherwise."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False, None
    return True, value


def setting_parameters(pipeline: Any) -> list[SettingParameter]:
    """`TASK.PARAM` flow parameters for the tasks `pipeline` calls (found in its code, nested pipelines too)."""
    from pydantic import Field

    found: list[SettingParameter] = []
    for task in called_tasks(pipeline):
        if task.name == pipeline.name:  # a one-task pipeline: the task's parameters are the pipeline's own
            continue
        for spec in task.params:
            if (spec.is_data or spec.type_key == "object") and spec.required:
                continue  # wired by the pipeline from another task's output or its own parameters
            where = f"{task.name}.{spec.name}"
            annotation = _uri_annotation(spec) if spec.is_data else spec.annotation
            shown, default = (False, None) if spec.required else _json_default(spec.default)
            if not shown:
                annotation = Optional[annotation] if annotation is not inspect.Parameter.empty else annotation
            text = data_description(spec) if spec.is_data else f"{spec.describe_type()} parameter of task {task.name}"
            description = f"{text}; fills what the pipeline does not pass (like --set {where}=...)"
            found.append(SettingParameter(where, default=Field(default, description=description),
                                          annotation=annotation))
    return found


def pipeline_flow_signature(pipeline: Any) -> inspect.Signature:
    """The flow's signature: the pipeline's parameters (data ones as `str`), then `TASK.PARAM` and `run.*`."""
    from pydantic import Field

    sig = inspect.signature(pipeline.func)
    by_name = {s.name: s for s in pipeline.params}
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        if p.kind == p.POSITIONAL_ONLY:
            p = p.replace(kind=p.POSITIONAL_OR_KEYWORD)
        spec = by_name.get(p.name)
        if spec is not None and spec.is_data:
            p = p.replace(annotation=_uri_annotation(spec))
        elif spec is not None:
            p = p.replace(annotation=spec.annotation)
        params.append(p)
    taken = {p.name for p in params}
    params += [p for p in setting_parameters(pipeline) if p.name not in taken]
    params += [SettingParameter(key, default=Field(None, description=text), annotation=Optional[str])
               for key, text in RUN_KEYS.items()]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


def split_flow_parameters(signature: inspect.Signature, args: tuple[Any, ...], kwargs: Mapping[str, Any]
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """A flow run's parameters as (pipeline arguments, `TASK.PARAM` settings)."""
    bound = signature.bind(*args, **kwargs).arguments
    arguments = {k: v for k, v in bound.items() if "." not in k}
    settings = {k: v for k, v in bound.items() if "." in k}
    return arguments, settings


def checked_settings(pipeline: Any, settings: Mapping[str, Any], signature: inspect.Signature) -> dict[str, Any]:
    """The settings a flow run was given, coerced to their parameters' types; ParameterError naming the first
    that does not coerce. Values left at their declared default (Prefect and the UI form fill those in) are
    left out, so the project configuration below decides them, as when nothing is passed."""
    from pydantic.fields import FieldInfo

    from dbnd_prefect.definitions import registry
    from dbnd_prefect.definitions.coerce import coerce

    tasks = {t.name: t for t in called_tasks(pipeline)}
    checked: dict[str, Any] = {}
    for key, value in settings.items():
        declared = signature.parameters[key].default if key in signature.parameters else inspect.Parameter.empty
        default = declared.default if isinstance(declared, FieldInfo) else declared
        if value is None or (declared is not inspect.Parameter.empty and value == default
                             and type(value) is type(default)):
            continue
        section, _, name = key.rpartition(".")
        if section == "run":
            checked[key] = str(value)
            continue
        task = tasks.get(section) or registry.all_items().get(section)
        spec = task.param_map.get(name) if task is not None else None
        if spec is None:
            raise ParameterError(f"unknown deployment parameter {key!r} of {pipeline.name}"
                                 f"{suggest(key, list(signature.parameters))}",
                                 hint="redeploy after changing the pipeline's tasks")
        try:
            checked[key] = coerce(task.name, spec, value)
        except ParameterError as exc:
            raise ParameterError(f"deployment {exc.message}", hint=f"pass a valid value for {key}") from None
    return checked


@contextlib.contextmanager
def settings_applied(settings: Mapping[str, Any]) -> Iterator[None]:
    """Make a config with `settings` in its "set" layer current (nothing to do when there are none)."""
    if not settings:
        yield
        return
    from dbnd_prefect.config import config_context, current_config, run_settings
    from dbnd_prefect.config.model import render_value

    config = current_config()
    for key, value in settings.items():
        config = config.with_layer("set", {key: value}, f"{_SOURCE} {key}={render_value(value)}")
    run_settings(config)
    with config_context(config):
        yield


def run_flow_body(pipeline: Any, signature: inspect.Signature, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                  run_body: Callable[[dict[str, Any]], Any]) -> Any:
    """The body of a pipeline's flow run: its `TASK.PARAM` settings applied, then `run_body(arguments)`.

    Settings count only where this flow run starts the dbnd run (a deployment run, `serve`); inside a
    run (script, `dbnd run`, a nested pipeline) the run's own configuration decides. A setting that does
    not coerce fails the flow run with one message naming it (a Failed state, no traceback).
    """
    from dbnd_prefect.context import current_run

    arguments, settings = split_flow_parameters(signature, args, kwargs)
    if current_run() is not None:
        return run_body(arguments)
    with contextlib.ExitStack() as stack:
        try:
            checked = checked_settings(pipeline, settings, signature)
            scheduled = scheduled_date()
            if scheduled is not None and "run.task_target_date" not in checked:
                checked["run.task_target_date"] = scheduled.isoformat()  # a daily schedule: daily partitions
            stack.enter_context(settings_applied(checked))
        except DbndError as exc:
            from prefect.states import Failed

            _log_without_traceback(str(exc))
            return Failed(message=str(exc))
        return run_body(arguments)


def scheduled_date() -> dt.date | None:
    """The (UTC) date a flow run was scheduled for, when a deployment's schedule created it; None for a run
    started by hand (`prefect deployment run`, the UI's Run button), which keeps the usual target date."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    if flow_run is None or not flow_run.auto_scheduled or flow_run.expected_start_time is None:
        return None
    return flow_run.expected_start_time.astimezone(dt.timezone.utc).date()


class _FailedStateLine(logging.Filter):
    """Prefect's engine logs a deployed flow run that ends Failed as an unexpected exception, with a
    traceback of its own frames; for a run failed by `message` one line says everything."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "FailedRun" and str(exc) == self.message:
            record.msg, record.args = "Flow run failed: %s", (self.message,)
            record.exc_info, record.exc_text = None, None
        return True


def _log_without_traceback(message: str) -> None:
    logging.getLogger("prefect.flow_runs").addFilter(_FailedStateLine(message))
