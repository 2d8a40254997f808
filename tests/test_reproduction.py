"""`reproduce`: a recorded run re-run with exactly its recorded inputs, its outputs compared by checksum."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dbnd_prefect import pipeline, task
from dbnd_prefect.context import last_run
from tests.counted_chain import calls, chain, load_rows


def test_reproduce_reruns_with_recorded_inputs_and_matches(raw_csv):
    from dbnd_prefect.api.reproduce import reproduce

    chain("raw.csv")
    entry = next(e for e in last_run().task_runs if e["task"] == "load_rows")
    flow_run_id = json.loads(Path(entry["manifest"]).read_text())["prefect"]["flow_run_id"]
    before = dict(calls)
    report = reproduce(flow_run_id)
    assert {(r.task, r.output) for r in report} == {("load_rows", "result"), ("scale", "result"),
                                                    ("summarize", "result")}
    assert all(r.matches for r in report), [(r.task, r.original_checksum, r.checksum) for r in report]
    assert calls["load_rows"] == before["load_rows"] + 1, "reproduce did not run the task again"


@task
def fit(frame: pd.DataFrame):
    return {"mean": float(frame["x"].mean())}  # an untyped output


@task
def apply_fit(model, frame: pd.DataFrame) -> float:
    return model["mean"] * len(frame)


@pipeline
def untyped_chain(raw: pd.DataFrame):
    rows = load_rows(raw)
    return apply_fit(fit(rows), rows)


@pipeline
def outer_untyped(raw: pd.DataFrame):
    return untyped_chain(raw)


def test_untyped_upstream_input_is_recorded_and_reproduced(raw_csv):
    from dbnd_prefect.api.reproduce import reproduce

    assert outer_untyped("raw.csv") == 6.0
    run = last_run()
    manifest = json.loads(Path(next(e for e in run.task_runs if e["task"] == "apply_fit")["manifest"]).read_text())
    model_input = next(i for i in manifest["inputs"] if i["name"] == "model")
    assert model_input["producer_task"] == "fit" and model_input["uri"].endswith("result.json")
    assert "model" not in manifest["parameters"]
    assert manifest["prefect"]["root_flow_run_id"] == run.flow_run_id != manifest["prefect"]["flow_run_id"]
    report = reproduce(run.flow_run_id)  # the root run's id reaches tasks of the nested pipeline
    assert {r.task for r in report} == {"load_rows", "fit", "apply_fit"} and all(r.matches for r in report)
