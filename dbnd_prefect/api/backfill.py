"""Backfills: one run of a task or pipeline per date, each with that date as its `run.task_target_date`.

    from dbnd_prefect.api.backfill import backfill
    result = backfill("daily_report", "2024-01-01", "2024-01-31", max_parallel=2)
    for day in result.dates:
        print(day.date, day.status, day.error or "")

Each date is its own run (`prepare_run` then `execute`), so a date whose signature already has stored outputs
is reused, not recomputed, and a second backfill over the same range rewrites nothing. A failing date does not
stop the others. Every run is tagged `backfill:<id>` in Prefect, so one backfill's flow runs show together in
the UI. A task receives its date through a parameter `task_target_date: datetime.date` (the `task` section
fills it in every task that declares one). With `max_parallel` above 1 the dates run in that many threads of
this process: each run's state lives in context variables, not in module globals.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

from dbnd_prefect.api.run import execute, prepare_run
from dbnd_prefect.definitions.coerce import parse_date
from dbnd_prefect.errors import DbndError, ParameterError

if TYPE_CHECKING:
    import os

    from dbnd_prefect.api.plan import PlannedTask
    from dbnd_prefect.api.results import RunResult
    from dbnd_prefect.api.run import PreparedRun

MAX_DATES = 3660  # ten years of days: a longer range is a typo, not a backfill


@dataclasses.dataclass
class DateRun:
    """How one date of a backfill went: `ran` (some task computed), `reused` (every task run was reused from
    stored outputs) or `failed` (`error` is the one line saying why)."""

    date: dt.date
    status: Literal["ran", "reused", "failed"]
    result: "RunResult | None" = None
    error: str | None = None
    exception: BaseException | None = dataclasses.field(default=None, repr=False)
    seconds: float = 0.0
    remote_flow_run_id: str | None = None  # a run of a deployment (`backfill --deployment`)

    @property
    def flow_run_id(self) -> str | None:
        return self.result.run.flow_run_id if self.result is not None else self.remote_flow_run_id


@dataclasses.dataclass
class BackfillResult:
    """Every date of a backfill, in date order, and the Prefect tag its runs share."""

    backfill_id: str
    dates: list[DateRun]

    @property
    def tag(self) -> str:
        return f"backfill:{self.backfill_id}"

    @property
    def failed(self) -> list[DateRun]:
        return [d for d in self.dates if d.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def count(self, status: str) -> int:
        return sum(1 for d in self.dates if d.status == status)


def parse_date_range(text: str) -> tuple[dt.date, dt.date]:
    """`START..END` (ISO dates, both included) as two dates, a single date as a range of one day;
    ParameterError naming the mistake."""
    start, sep, end = str(text).partition("..")
    if not sep:
        day = _date(start, "date")
        return day, day
    return _date(start, "START"), _date(end, "END")


def _date(value: Any, what: str) -> dt.date:
    try:
        return parse_date("backfill", what, value)
    except ParameterError:
        raise ParameterError(f"backfill {what} {str(value)!r} is not a date", hint="use YYYY-MM-DD") from None


def dates_between(start: Any, end: Any) -> list[dt.date]:
    """Every date from `start` to `end`, both included; ParameterError for an empty or huge range."""
    first, last = _date(start, "START"), _date(end, "END")
    if last < first:
        raise ParameterError(f"backfill range {first}..{last} is empty: END is before START",
                             hint="give START..END with START <= END")
    days = (last - first).days + 1
    if days > MAX_DATES:
        raise ParameterError(f"backfill range {first}..{last} has {days} dates (at most {MAX_DATES})",
                             hint="split the range")
    return [first + dt.timedelta(days=i) for i in range(days)]


def date_values(day: dt.date) -> dict[str, Any]:
    """The `--set` values that make a run the run of `day`: its target date, and the `task_target_date`
    parameter of every task that declares one."""
    return {"run.task_target_date": day.isoformat(), "task.task_target_date": day.isoformat()}


def backfill(
    task: Any,
    start: Any,
    end: Any,
    *,
    set: Mapping[str, Any] | None = None,  # noqa: A002 - mirrors --set
    override: Mapping[str, Any] | None = None,
    env: str | None = None,
    conf_files: Sequence["str | os.PathLike[str]"] = (),
    task_version: str | None = None,
    modules: Sequence[str] = (),
    max_parallel: int = 1,
    set_values: Iterable[Mapping[str, Any]] = (),
    override_values: Iterable[Mapping[str, Any]] = (),
    backfill_id: str | None = None,
    command_line: list[str] | None = None,
    on_date: Callable[[DateRun], None] | None = None,
) -> BackfillResult:
    """Run `task` (a @task/@pipeline or its name) once per date from `start` to `end` (both included).

    `set`/`override`/`env`/`conf_files`/`task_version`/`modules` are as for `dbnd_prefect.run`;
    `set_values`/`override_values` are parsed `--set`/`--override` layers (the CLI's). The request is checked
    once before any date runs (a mistake is a DbndError, exit code 2); after that a date that fails is
    recorded and the others go on. `on_date` is called as each date ends (from its thread).
    """
    dates = dates_between(start, end)
    if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
        raise ParameterError(f"--max-parallel {max_parallel!r}: expected a whole number >= 1")
    sets = [*set_values, *([set] if set else [])]
    overrides = [*override_values, *([override] if override else [])]
    request = dict(override_values=overrides, env=env, conf_files=conf_files, task_version=task_version,
                   modules=modules)
    # the task, the configuration and the values: checked once, before any date runs
    probe = prepare_run(task, [*sets, date_values(dates[0])], check=False, **request)
    obj = probe.obj
    ident = backfill_id or uuid.uuid4().hex[:8]

    def one(day: dt.date) -> DateRun:
        import prefect

        started = time.perf_counter()
        try:
            with prefect.tags(f"backfill:{ident}"):
                prepared = prepare_run(obj, [*sets, date_values(day)], **request)
                result = execute(prepared, command_line=command_line)
        except Exception as exc:  # noqa: BLE001 - a failing date is reported, the others go on
            done = DateRun(day, "failed", error=one_line(exc), exception=exc)
        else:
            states = [e.get("state") for e in result.run.task_runs]
            reused = bool(states) and all(state == "Cached" for state in states)
            done = DateRun(day, "reused" if reused else "ran", result=result)
        done.seconds = time.perf_counter() - started
        if on_date is not None:
            on_date(done)
        return done

    if max_parallel == 1 or len(dates) == 1:
        runs = [one(day) for day in dates]
    else:
        with ThreadPoolExecutor(max_workers=min(max_parallel, len(dates)),
                                thread_name_prefix=f"backfill-{ident}") as pool:
            # each date in a copy of this context: the caller's config_context, no run in effect
            futures = [pool.submit(contextvars.copy_context().run, one, day) for day in dates]
            runs = [future.result() for future in futures]
    return BackfillResult(ident, runs)


def plan_dates(
    task: Any,
    start: Any,
    end: Any,
    *,
    set_values: Iterable[Mapping[str, Any]] = (),
    override_values: Iterable[Mapping[str, Any]] = (),
    env: str | None = None,
    conf_files: Sequence["str | os.PathLike[str]"] = (),
    task_version: str | None = None,
    modules: Sequence[str] = (),
) -> list[tuple[dt.date, "PreparedRun", list["PlannedTask"]]]:
    """What a backfill of `task` from `start` to `end` would do, per date: the prepared run and its planned task
    calls (reused or run, and why); nothing runs and no Prefect API is used."""
    from dbnd_prefect.api.plan import plan_call
    from dbnd_prefect.config import config_context
    from dbnd_prefect.runtime.session import running

    dates = dates_between(start, end)
    sets, request = list(set_values), dict(override_values=list(override_values), env=env, conf_files=conf_files,
                                           task_version=task_version, modules=modules)
    obj = prepare_run(task, [*sets, date_values(dates[0])], check=False, **request).obj
    planned = []
    for day in dates:
        prepared = prepare_run(obj, [*sets, date_values(day)], **request)
        with config_context(prepared.config), running(prepared.run):
            planned.append((day, prepared, plan_call(prepared.root, prepared.run)))
    return planned


def one_line(exc: BaseException) -> str:
    """What went wrong, on one line (a DbndError's own rendering, else the exception's type and text)."""
    text = exc.render() if isinstance(exc, DbndError) else f"{type(exc).__name__}: {exc}"
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__


__all__ = ["DateRun", "BackfillResult", "backfill", "parse_date_range", "dates_between", "date_values", "plan_dates", "one_line"]
