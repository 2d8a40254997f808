"""Backfills through a deployment: one flow run of the deployment per date, each with that date as its
`run.task_target_date` parameter; the deployment's work pool does the work.

    from dbnd_prefect.api.backfill_remote import backfill_deployment
    result = backfill_deployment("daily_report/nightly", "2024-01-01", "2024-01-31", max_parallel=4)

The runs share the tag `backfill:<id>`. A date whose every task run was reused (all `Cached`) is `reused`; a
run that does not complete is `failed` with its state's message; the others go on.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any, Callable, Iterable, Mapping

from dbnd_prefect.api.backfill import BackfillResult, DateRun, dates_between
from dbnd_prefect.errors import ConfigError, ParameterError

POLL_SECONDS = 1.0
SETTLE_SECONDS = 30.0  # how long a completed run's task-run states may take to reach the server


def deployment_parameters(values: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`--set` values as deployment parameters, each text read as JSON where it is JSON (as
    `prefect deployment run --param` reads it): `alpha=0.3` is a number, `raw=data.csv` a string."""
    parameters: dict[str, Any] = {}
    for layer in values:
        for key, value in layer.items():
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            parameters[key] = value
    return parameters


def backfill_deployment(
    deployment: str,
    start: Any,
    end: Any,
    *,
    parameters: Mapping[str, Any] | None = None,
    max_parallel: int = 1,
    backfill_id: str | None = None,
    on_date: Callable[[DateRun], None] | None = None,
) -> BackfillResult:
    """Submit one run of `deployment` (`FLOW/DEPLOYMENT`) per date from `start` to `end`, at most
    `max_parallel` at a time, and wait for them; ConfigError when the deployment does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    dates = dates_between(start, end)
    if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
        raise ParameterError(f"--max-parallel {max_parallel!r}: expected a whole number >= 1")
    ident = backfill_id or uuid.uuid4().hex[:8]
    tag = f"backfill:{ident}"
    values = dict(parameters or {})
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise ConfigError(f"deployment {deployment!r} does not exist on the Prefect server",
                              hint="see `prefect deployment ls`; give FLOW/DEPLOYMENT") from None
        waiting = list(dates)
        running: dict[dt.date, tuple[Any, float]] = {}
        done: dict[dt.date, DateRun] = {}
        while waiting or running:
            while waiting and len(running) < max_parallel:
                day = waiting.pop(0)
                flow_run = client.create_flow_run_from_deployment(
                    found.id, parameters={**values, "run.task_target_date": day.isoformat()}, tags=[tag])
                running[day] = (flow_run.id, time.perf_counter())
            time.sleep(POLL_SECONDS)
            for day, (flow_run_id, started) in list(running.items()):
                flow_run = client.read_flow_run(flow_run_id)
                if flow_run.state is None or not flow_run.state.is_final():
                    continue
                del running[day]
                done[day] = _outcome(client, day, flow_run, time.perf_counter() - started)
                if on_date is not None:
                    on_date(done[day])
    return BackfillResult(ident, [done[day] for day in dates])


def _outcome(client: Any, day: dt.date, flow_run: Any, seconds: float) -> DateRun:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    state = flow_run.state
    if not state.is_completed():
        message = (state.message or state.name).strip().splitlines()[0] if (state.message or state.name) else ""
        run = DateRun(day, "failed", error=f"flow run {flow_run.name} is {state.name}: {message}")
    else:
        # the server records task-run states from the run's events, after the flow run's own end state: wait
        # (bounded) until every task run it knows of has ended
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
            states = [t.state for t in tasks]
            if (states and all(state is not None and state.is_final() for state in states)) \
                    or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        cached = [state is not None and state.name == "Cached" for state in states]
        run = DateRun(day, "reused" if cached and all(cached) else "ran")
    run.remote_flow_run_id = str(flow_run.id)
    run.seconds = seconds
    return run


__all__ = ["backfill_deployment", "deployment_parameters"]
