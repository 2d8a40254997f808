"""`plan`: what would run and why, without running anything."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dbnd_prefect import pipeline
from dbnd_prefect.config import config_context
from dbnd_prefect.api.plan import plan
from dbnd_prefect.context import last_run
from tests.counted_chain import calls, chain
from tests.sample_tasks import mapped, scale_by


def test_plan_says_hit_miss_and_why(raw_csv):
    planned = plan(chain, "raw.csv")
    assert [p.status for p in planned] == ["miss"] * 4
    assert planned[0].reason == "never ran in this environment"
    chain("raw.csv")
    assert [p.status for p in plan(chain, "raw.csv")] == ["hit"] * 4
    with config_context({"scale.factor": "5"}):
        planned = {p.task.name + str(i): p for i, p in enumerate(plan(chain, "raw.csv"))}
    assert planned["load_rows0"].status == "hit"
    assert planned["scale1"].status == "miss" and "parameter 'factor' changed" in planned["scale1"].reason
    assert planned["summarize2"].status == "miss" and "input 'frame' changed" in planned["summarize2"].reason
    assert planned["summarize3"].status == "hit"
    assert calls == {"load_rows": 1, "scale": 1, "summarize": 2}, "plan ran a task"


def test_plan_reports_stale_outputs(raw_csv):
    chain("raw.csv")
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    Path(entry["outputs"]["result"]).unlink()
    status = {p.task.name: (p.status, p.reason) for p in plan(chain, "raw.csv")}
    assert status["scale"][0] == "stale" and "missing" in status["scale"][1]


def test_plan_maps_over_known_lists_and_refuses_upstream_ones(workdir):
    from dbnd_prefect.errors import ParameterError
    from dbnd_prefect.api.plan import plan

    @pipeline
    def literal_only(xs: list):
        return scale_by.map(xs, 2)

    assert [p.task.name for p in plan(literal_only, [1, 2, 3])] == ["scale_by"] * 3
    with pytest.raises(ParameterError, match=r"scale_by.map\(\) over <output 'result' of 'numbers'> cannot be planned"):
        plan(mapped, [1, 2, 3])


def test_plan_and_run_agree_on_output_formats(workdir):
    from dbnd_prefect import task

    @task
    def plan_untyped_frame(n: int):
        return pd.DataFrame({"a": range(n)})

    @task
    def plan_typed_frame(n: int) -> pd.DataFrame:
        return pd.DataFrame({"a": range(n)})

    untyped, typed = plan(plan_untyped_frame, 3)[0], plan(plan_typed_frame, 3)[0]
    assert untyped.outputs["result"].endswith("/result.*"), "an unannotated output's format is the value's"
    assert typed.outputs["result"].endswith("/result.parquet")
    plan_untyped_frame(3)
    plan_typed_frame(3)
    written = {e["task"]: e["outputs"]["result"] for e in last_run().task_runs}
    assert written["plan_typed_frame"] == typed.outputs["result"]
    after = plan(plan_untyped_frame, 3)[0]
    assert after.status == "hit" and after.outputs["result"].endswith("/result.parquet")
    assert Path(after.outputs["result"]).exists()
