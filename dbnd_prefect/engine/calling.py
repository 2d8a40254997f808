"""How a call of a task or pipeline runs, wherever it is made; every call is bound once, here.

A call to a task
- inside a pipeline body submits it to the pipeline's task runner and returns `OutputRef`s at once,
  so independent branches run concurrently and outputs pass in memory;
- inside a task body or a plain Prefect flow runs it there and returns its value;
- anywhere else (script, notebook, test, `dbnd run`) runs it as a one-task flow and returns its value.
A pipeline is a Prefect flow; called inside another pipeline it is a nested flow. A top-level call of
either opens a run (unless one is in effect), binds the call, and hands the bound call to the flow body.

At the edge of a script's or notebook's top-level call, a DbndError (bad input) is raised `from None`, shown
from the caller's line, and Prefect's console reports the failure at most once; Ctrl-C or SIGTERM cancels
the flow run on the Prefect server (`run_root`).
"""

from __future__ import annotations

import contextvars
import inspect
import sys
from typing import TYPE_CHECKING, Any, Mapping

from dbnd_prefect.calls import BoundCall, bind, bound
from dbnd_prefect.context import RunContext, current_run
from dbnd_prefect.engine.handoff import handed_off
from dbnd_prefect.engine.pipeline_body import handed_to_body
from dbnd_prefect.engine.prefect_tasks import prefect_task_for
from dbnd_prefect.engine.profile_checks import profile_applied
from dbnd_prefect.engine.runners import nested_flow
from dbnd_prefect.engine.scope import current_scope, map_arguments
from dbnd_prefect.errors import DbndError, ParameterError
from dbnd_prefect.outputs import OutputRef
from dbnd_prefect.runtime.console import at_caller, quiet_after_interrupt, quiet_repeated_reports
from dbnd_prefect.runtime.exit_hooks import RunInterrupted, interrupted, interrupts_cancel
from dbnd_prefect.runtime.session import api_of, ensure_run
from dbnd_prefect.targets import Target

if TYPE_CHECKING:
    from dbnd_prefect.engine.flows import PipelineFlow

# The task call a one-task flow's body submits, handed over by its caller (see `single_task_flow`).
_single: contextvars.ContextVar[BoundCall | None] = contextvars.ContextVar("dbnd_single_task_call", default=None)


def _in_prefect_run() -> tuple[bool, bool]:
    """(a flow run is in effect, a task run is in effect)."""
    if "prefect" not in sys.modules:  # no run can be in effect (a command that only plans)
        return False, False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None, TaskRunContext.get() is not None


def run_for(task: Any, run: RunContext | None) -> RunContext | None:
    """The run a call of `task` belongs to: `run`, or, for a task with another `task_env`, its counterpart in
    that environment (the profile's data root, records and signature environment)."""
    env = getattr(task, "task_env", None)  # pipelines run in the run's environment
    if env is None or run is None or run.env == env:
        return run
    from dbnd_prefect.engine.remote_caller import run_in_env

    return run_in_env(run, env)


def wrap_outputs(task: Any, source: Any, call: BoundCall) -> Any:
    """References to the outputs of a task run (`source`: its future, or its stored outputs when planned)."""
    refs = [OutputRef(source, o.name, call.digest) for o in task.outputs]
    if len(refs) == 1:
        return refs[0]
    ret = task.call_signature.return_annotation
    if isinstance(ret, type) and issubclass(ret, tuple) and hasattr(ret, "_fields") \
            and list(ret._fields) == [o.name for o in task.outputs]:
        return ret(*refs)
    return tuple(refs)


def call_task(task: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A call of dbnd task `task` wherever it is made (see the module docstring)."""
    scope = current_scope()
    in_flow, in_task = _in_prefect_run()
    if scope is not None and not in_task:
        call = bind(task, args, kwargs, run_for(task, current_run()))
        return wrap_outputs(task, scope.submit(call), call)
    if in_flow or in_task:
        with ensure_run() as outer:
            run = run_for(task, outer)
            call = bind(task, args, kwargs, run)
            if not task.versioned:
                return prefect_task_for(task, run, call.run_name)(call=call).value()
            # same signature, same outputs: a second call in this run is served by the first
            done = run.calls_in_tasks.get(call.digest)
            if done is None:
                from dbnd_prefect.versioning.verify import drop_if_broken

                drop_if_broken(call, run)
                done = run.calls_in_tasks[call.digest] = prefect_task_for(task, run, call.run_name)(call=call)
            return done.value()
    __tracebackhide__ = True  # IPython and pytest show a failing call from the caller's line
    try:
        with ensure_run() as run, quiet_repeated_reports():
            return run_root(bind(task, args, kwargs, run_for(task, run)), run)
    except (DbndError, RunInterrupted) as exc:
        raise at_caller(exc) from None


def map_task(task: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Any]:
    """One call of `task` per element, inside a pipeline: Prefect's `Task.map` for dbnd tasks.

    Iterable arguments are zipped (all of the same length); strings, bytes, mappings, other values and
    `prefect.unmapped(x)` go whole to every call. An upstream output is waited for and mapped over like any
    other value. Returns what each call returns (output references), in order.
    """
    if current_scope() is None or _in_prefect_run()[1]:
        raise ParameterError(f"{task.name}.map() works inside a @pipeline body only",
                             hint=f"call it from a pipeline, or loop: [{task.name}(x) for x in items]")
    try:
        given = task.call_signature.bind_partial(*args, **kwargs).arguments
    except TypeError as exc:
        raise ParameterError(f"{task.name}.map(): {exc}",
                             hint=f"parameters are {[p.name for p in task.params]}") from None
    return [call_task(task, (), arguments) for arguments in map_arguments(task.name, given)]


def call_pipeline(pipeline: "PipelineFlow", args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """A call of dbnd pipeline `pipeline` wherever it is made: planned, nested, or a top-level run."""
    scope = current_scope()
    if scope is not None and scope.dry:  # planning: the body runs here, its task calls are recorded
        return pipeline.call_function(bind(pipeline, args, kwargs, current_run()).loadable())
    in_flow, in_task = _in_prefect_run()
    if in_flow or in_task:
        with ensure_run() as run:
            call = bind(pipeline, args, kwargs, run)
            # Output references pass unresolved (handed off in process), so the nested pipeline's tasks
            # wait on them, fingerprint them by their producer's signature and record their lineage.
            import prefect

            with handed_to_body(call), handed_off(_locations(call.arguments)) as passed:
                return prefect.Flow.__call__(nested_flow(pipeline), **passed)  # on its parent's Dask cluster
    __tracebackhide__ = True  # IPython and pytest show a failing call from the caller's line
    try:
        with ensure_run() as run, quiet_repeated_reports():
            return run_root(bind(pipeline, args, kwargs, run), run)
    except (DbndError, RunInterrupted) as exc:
        raise at_caller(exc) from None


def run_root(call: BoundCall, run: RunContext) -> Any:
    """Run a bound top-level call (a pipeline, or a task as its one-task flow) in `run`; its values.

    `run` is the run in effect; a task with a `task_env` of its own is bound in that environment's run.
    Ctrl-C or SIGTERM while it runs cancels its flow run on the server and raises RunInterrupted (a
    KeyboardInterrupt; see runtime/exit_hooks.py)."""
    import prefect

    from dbnd_prefect.prefect_ui.data_flow import sent_after, wait_until_sent
    from dbnd_prefect.runtime.prefect_api import prefect_session

    if call.task.kind == "task":
        flow = single_task_flow(call.task)
        flow_call = BoundCall(flow, call.arguments, run, inputs=call.inputs)
    else:
        flow, flow_call = call.task, call
    wait_until_sent()  # an earlier run's artifact writes would make this run's creation wait 2 s
    token = _single.set(call if call.task.kind == "task" else None)
    try:
        with interrupts_cancel(run, on_stuck=_say_interrupted, end_process=not _interactive()) as guard, \
                quiet_after_interrupt(interrupted), sent_after(), handed_to_body(flow_call), \
                handed_off(_locations(call.arguments)) as passed, prefect_session(api_of(run)), \
                profile_applied(flow, run, call) as runnable:
            try:
                return prefect.Flow.__call__(runnable, **passed)
            except BaseException:
                if guard is None or guard.signum is None:
                    raise
                # SIGINT or SIGTERM (KeyboardInterrupt, Prefect's TerminationSignal or what a task made of
                # them): the flow run and what it started are cancelled on the server, and the caller is told
                guard.unwound.set()
                raise guard.finish() from None
    finally:
        _single.reset(token)


def _interactive() -> bool:
    """A notebook's kernel or Python's REPL: a session an interrupt must never end."""
    return "ipykernel" in sys.modules or hasattr(sys, "ps1") or bool(sys.flags.interactive)


def _say_interrupted(error: RunInterrupted) -> None:
    """What the process says when it ends itself after an interrupt (a task body still ran; see exit_hooks)."""
    print(f"dbnd: {error.line()}", file=sys.stderr)


def single_task_flow(task: Any) -> "PipelineFlow":
    """`task` as a flow of its own: what a top-level call of it or `dbnd run TASK` runs (made once per task).
    Its body submits the task's bound call that the caller handed over."""
    flow = task.__dict__.get("_single_task_flow")
    if flow is None:
        def run_one(**arguments: Any) -> Any:
            call = _single.get()
            if call is None or call.task is not task:  # not called in this process: bound by the flow body
                run = run_for(task, current_run())
                call = bound(task, dict(arguments), run)
            return wrap_outputs(task, current_scope().submit(call), call)

        run_one.__signature__ = task.call_signature.replace(  # type: ignore[attr-defined]
            return_annotation=inspect.Signature.empty)
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(run_one, attr, getattr(task.func, attr, None))
        from dbnd_prefect.engine.flows import PipelineFlow

        flow = task.__dict__["_single_task_flow"] = PipelineFlow(run_one, name=task.name, _params=task.params)
    return flow


def _locations(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.uri if isinstance(v, Target) else v) for k, v in arguments.items()}


__all__ = ["call_task", "map_task", "call_pipeline", "run_root", "single_task_flow", "wrap_outputs", "run_for"]
