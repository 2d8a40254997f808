"""What happens inside one pipeline's flow run: the body calls its tasks in a scope, waits for them, and
records what they did (the run record, the data flow shown in the Prefect UI).

A pipeline called in this process was bound by its caller, who hands the `BoundCall` to the flow body
(`handed_to_body`); a flow run a worker or `serve` starts (a deployment) binds its flow-run parameters here.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from typing import TYPE_CHECKING, Any, Iterator

from dbnd_prefect.calls import bind
from dbnd_prefect.engine.handoff import take_back
from dbnd_prefect.engine.scope import PipelineScope
from dbnd_prefect.outputs import resolve_refs
from dbnd_prefect.runtime.session import ensure_run

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall

# The bound call of the flow about to run in this context: set by the caller around Prefect's flow call (a
# sync flow's body runs in the caller's thread and context), taken by the body.
_handed: contextvars.ContextVar["BoundCall | None"] = contextvars.ContextVar("dbnd_handed_call", default=None)


@contextlib.contextmanager
def handed_to_body(call: "BoundCall") -> Iterator[None]:
    """Hand `call` (a pipeline's bound call) to the body of the flow called inside the block."""
    token = _handed.set(call)
    try:
        yield
    finally:
        _handed.reset(token)


def taken_call(pipeline: Any) -> "BoundCall | None":
    """The bound call its caller handed to this flow run of `pipeline`, if any."""
    call = _handed.get()
    return call if call is not None and call.task is pipeline else None


def run_pipeline_body(pipeline: Any, parameters: dict[str, Any]) -> Any:
    """The body of a pipeline's flow run: bind (unless its caller did), call the function in a scope, wait for
    every task run, record what they did; the pipeline's return value with references resolved."""
    from prefect.context import FlowRunContext

    with ensure_run() as run:
        call = taken_call(pipeline)
        if call is None:  # a deployed run (or serve): the flow run's parameters, bound here
            call = bind(pipeline, (), {k: take_back(v) for k, v in parameters.items()}, run)
        arguments = call.loadable()
        flow_ctx = FlowRunContext.get()
        flow_run_id = str(flow_ctx.flow_run.id) if flow_ctx else None
        # nested pipelines add their task runs to the root's record; a retried root writes it again
        is_root = run.flow_run_id in (None, flow_run_id)
        if is_root:
            run.flow_run_id = flow_run_id
            run.flow_run_name = flow_ctx.flow_run.name if flow_ctx else None
        started = dt.datetime.now(dt.timezone.utc)
        state = "Failed"
        with PipelineScope.enter() as scope:
            try:
                returned = pipeline.call_function(arguments)
                scope.wait_all()
                resolved = resolve_refs(returned)
                state = "Completed"
                return resolved
            finally:
                summaries = scope.summaries()
                run.task_runs.extend(summaries)
                from dbnd_prefect.prefect_ui.data_flow import publish  # artifacts and lineage events

                publish(pipeline.name, summaries, flow_run_id, state)
                if is_root:
                    from dbnd_prefect.history.run_record import write_run_record

                    run.record_uri = write_run_record(run, pipeline.name, arguments, state, started)


__all__ = ["handed_to_body", "taken_call", "run_pipeline_body"]
