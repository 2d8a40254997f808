"""Backfills: one run per date with that date as run.task_target_date; reuse, failures, the Prefect tag, the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.api.backfill import backfill, dates_between, parse_date_range
from dbnd_prefect.errors import ParameterError
from dbnd_prefect.pytest_plugin import run_cmd

calls: list[str] = []


@task
def bf_day(task_target_date: dt.date = None, base: int = 1, fail_on: str = "") -> str:  # type: ignore[assignment]
    calls.append(f"bf_day {task_target_date}")
    if fail_on and str(task_target_date) == fail_on:
        raise ValueError(f"no data for {task_target_date}")
    return f"{task_target_date}:{base}"


@task
def bf_shout(text: str) -> str:
    calls.append(f"bf_shout {text}")
    return text.upper()


@pipeline
def bf_pipe(base: int = 1, fail_on: str = ""):
    return bf_shout(bf_day(base=base, fail_on=fail_on))


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every data file (not the .dbnd records and run records) with its modification time and size."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*") if p.is_file() and ".dbnd" not in p.parts}


def _tagged_flow_runs(tag: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))


def test_each_date_runs_with_its_date_then_a_second_backfill_reuses_and_rewrites_nothing(workdir):
    calls.clear()
    first = backfill(bf_pipe, "2024-03-01", "2024-03-03", set={"base": 7})
    assert [(d.date.isoformat(), d.status) for d in first.dates] == [
        ("2024-03-01", "ran"), ("2024-03-02", "ran"), ("2024-03-03", "ran")]
    assert first.ok and first.count("ran") == 3
    # each run's task received its date, and its outputs went to that date's folder
    assert [d.result.values for d in first.dates] == ["2024-03-01:7", "2024-03-02:7", "2024-03-03:7"]
    for day in first.dates:
        assert day.result.run.target_date == day.date
        assert f"/{day.date.isoformat()}/bf_day/" in day.result.run.task_runs[0]["outputs"]["result"]
    assert sorted(calls) == sorted([f"bf_day 2024-03-0{i}" for i in (1, 2, 3)] +
                                   [f"bf_shout 2024-03-0{i}:7" for i in (1, 2, 3)])
    # the runs are grouped in Prefect by one tag
    runs = _tagged_flow_runs(first.tag)
    assert sorted(str(r.id) for r in runs) == sorted(d.flow_run_id for d in first.dates)

    before = _files(workdir / "data")
    calls.clear()
    second = backfill(bf_pipe, dt.date(2024, 3, 1), dt.date(2024, 3, 3), set={"base": 7})
    assert [d.status for d in second.dates] == ["reused", "reused", "reused"]
    assert calls == []
    assert _files(workdir / "data") == before  # no output or manifest rewritten
    assert second.backfill_id != first.backfill_id


def test_a_failing_date_does_not_stop_the_others_and_the_table_says_why(workdir):
    calls.clear()
    result = run_cmd(["backfill", "tests.test_backfill.bf_pipe", "--task-target-date", "2024-04-01..2024-04-04",
                      "--max-parallel", "2", "--set", "fail_on=2024-04-02"])
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("backfill ") and "4 date(s), 3 ran, 0 reused, 1 failed" in lines[0]
    assert "(Prefect tag backfill:" in lines[0]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["2024-04-01", "ran"], ["2024-04-02", "failed:"], ["2024-04-03", "ran"], ["2024-04-04", "ran"]]
    assert lines[2] == ("2024-04-02 failed: task 'bf_day' failed: ValueError: no data for 2024-04-02 "
                        "(run with --verbose for the traceback)")
    assert "Traceback" not in result.stderr
    # the dates that ran are reused by the next backfill; the failed one runs again (and fails again)
    again = run_cmd(["backfill", "tests.test_backfill.bf_pipe", "--task-target-date", "2024-04-01..2024-04-04",
                     "--set", "fail_on=2024-04-02"])
    assert again.exit_code == 1
    assert [line.split()[:2] for line in again.stdout.strip().splitlines()[1:]] == [
        ["2024-04-01", "reused"], ["2024-04-02", "failed:"], ["2024-04-03", "reused"], ["2024-04-04", "reused"]]


def test_plan_over_a_date_range_says_per_date_what_a_backfill_would_reuse_and_run(workdir):
    calls.clear()
    backfill(bf_pipe, "2024-05-02", "2024-05-02", set={"base": 3})  # one date of three already done
    calls.clear()
    before = _files(workdir / "data")
    planned = run_cmd(["plan", "tests.test_backfill.bf_pipe", "--task-target-date", "2024-05-01..2024-05-03",
                       "--set", "base=3"])
    assert planned.exit_code == 0, planned.stderr
    lines = planned.stdout.strip().splitlines()
    assert lines[0].startswith("pipeline bf_pipe: 3 date(s) 2024-05-01..2024-05-03") and "nothing was run" in lines[0]
    per_date = {line.split(":")[0]: line for line in lines[1:] if not line.startswith("  ")}
    assert per_date == {"2024-05-01": "2024-05-01: would reuse 0 task run(s) and run 2 (2 miss)",
                        "2024-05-02": "2024-05-02: would reuse 2 task run(s) and run 0",
                        "2024-05-03": "2024-05-03: would reuse 0 task run(s) and run 2 (2 miss)"}
    assert sum(1 for line in lines if line.startswith("  bf_day: miss")) == 2
    assert calls == [] and _files(workdir / "data") == before  # nothing ran, nothing written

    # and the backfill then does what the plan said
    done = backfill(bf_pipe, "2024-05-01", "2024-05-03", set={"base": 3})
    assert [d.status for d in done.dates] == ["ran", "reused", "ran"]


@pytest.mark.parametrize("args, message", [
    (["--task-target-date", "2024-01-05..2024-01-01"], "backfill range 2024-01-05..2024-01-01 is empty"),
    (["--task-target-date", "2024-01-01..tomorrow"], "backfill END 'tomorrow' is not a date"),
    ([], "dbnd backfill: missing --task-target-date START..END"),
    (["--task-target-date", "2024-01-01..2024-01-02", "--max-parallel", "0"], "--max-parallel 0"),
    (["--task-target-date", "2024-01-01..2024-01-02", "--set", "nope=1"], "unknown parameter 'nope' of bf_pipe"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(workdir, args, message):
    calls.clear()
    result = run_cmd(["backfill", "tests.test_backfill.bf_pipe", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert calls == [] and not (workdir / "data").exists()


def test_date_ranges():
    assert parse_date_range("2024-02-28..2024-03-01") == (dt.date(2024, 2, 28), dt.date(2024, 3, 1))
    assert parse_date_range("2024-02-28") == (dt.date(2024, 2, 28), dt.date(2024, 2, 28))
    assert dates_between("2024-02-28", "2024-03-01") == [dt.date(2024, 2, 28), dt.date(2024, 2, 29),
                                                         dt.date(2024, 3, 1)]
    with pytest.raises(ParameterError, match="at most"):
        dates_between("1990-01-01", "2024-01-01")
