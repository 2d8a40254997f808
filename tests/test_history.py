"""What a run leaves behind: manifests beside outputs, run records, and version selectors over them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.config import config_context
from dbnd_prefect.context import last_run
from tests.counted_chain import chain, load_rows


def test_manifest_validates_against_shipped_schema(raw_csv):
    chain("raw.csv")
    schema = json.loads((Path(__file__).parent.parent / "dbnd_prefect" / "manifest.schema.json").read_text())
    for entry in last_run().task_runs:
        manifest = json.loads(Path(entry["manifest"]).read_text())
        jsonschema.validate(manifest, schema)
        assert manifest["signature"] == entry["signature"]
        assert manifest["prefect"]["task_run_id"] == entry["task_run_id"]
    load = json.loads(Path(next(e for e in last_run().task_runs if e["task"] == "load_rows")["manifest"]).read_text())
    assert load["inputs"][0]["uri"].endswith("raw.csv")
    out = load["outputs"]["result"]
    assert out["rows"] == 3 and out["schema"] == {"x": "int64"} and out["bytes"] == Path(out["uri"]).stat().st_size


@task
def connect(url: str, password: str = "hunter2") -> str:
    return url


def test_manifest_masks_secret_parameters(workdir):
    connect("db://host")
    manifest = Path(last_run().task_runs[0]["manifest"]).read_text()
    assert "hunter2" not in manifest and '"password": "****"' in manifest


@task
def total(frame: pd.DataFrame) -> float:
    return float(frame["x"].sum())


def test_latest_and_run_selectors_resolve_to_stored_outputs(raw_csv):
    chain("raw.csv")
    first_run = next(e for e in last_run().task_runs if e["task"] == "scale")
    manifest = json.loads(Path(first_run["manifest"]).read_text())
    flow_run_id = manifest["prefect"]["flow_run_id"]
    with config_context({"scale.factor": "10"}):
        chain("raw.csv")
    assert total("scale.result@latest") == 60.0
    assert total(f"scale.result@run:{flow_run_id}") == 12.0
    assert total(f"scale.result@run:{flow_run_id[:8]}") == 12.0


def test_selector_errors_name_the_selector(raw_csv):
    from dbnd_prefect.errors import ParameterError

    with pytest.raises(ParameterError, match=r"scale\.result@latest: no stored outputs of task 'scale'"):
        total("scale.result@latest")
    chain("raw.csv")
    with pytest.raises(ParameterError, match=r"no stored output 'nope'.*\['result'\]"):
        total("scale.nope@latest")


def test_every_pipeline_run_leaves_a_run_record(raw_csv, workdir):
    chain("raw.csv")
    run = last_run()
    record = json.loads(Path(run.record_uri).read_text())
    assert Path(run.record_uri) == workdir / "data" / ".dbnd" / "runs" / f"{run.flow_run_id}.json"
    assert record["pipeline"] == "chain" and record["state"] == "Completed"
    assert record["parameters"]["raw"].endswith("raw.csv")
    by_task = {e["task"]: e for e in record["task_runs"]}
    assert set(by_task) == {"load_rows", "scale", "summarize"}
    for entry in by_task.values():
        assert entry["state"] == "Completed" and Path(entry["manifest"]).is_file()


def test_a_fully_cached_run_is_recorded_and_reproducible(raw_csv):
    from dbnd_prefect.api.reproduce import reproduce

    chain("raw.csv")
    first = last_run()
    chain("raw.csv")
    second = last_run()
    record = json.loads(Path(second.record_uri).read_text())
    assert {e["state"] for e in record["task_runs"]} == {"Cached"}
    # the reused outputs' manifests are the first run's: the record is what ties them to this run
    assert {e["manifest"] for e in record["task_runs"]} == {e["manifest"] for e in first.task_runs}
    report = reproduce(second.flow_run_id[:8])
    assert {(r.task, r.output) for r in report} == {("load_rows", "result"), ("scale", "result"),
                                                    ("summarize", "result")}
    assert all(r.matches for r in report)


@task
def explode(frame: pd.DataFrame) -> int:
    raise ValueError("boom")


@pipeline
def broken(raw: pd.DataFrame, password: str = "hunter2-secret"):
    return explode(load_rows(raw))


def test_a_failed_run_is_recorded_with_the_failing_task_and_no_secrets(raw_csv):
    with pytest.raises(Exception, match="boom"):
        broken("raw.csv")
    run = last_run()
    text = Path(run.record_uri).read_text()
    record = json.loads(text)
    assert record["state"] == "Failed"
    assert {e["task"]: e["state"] for e in record["task_runs"]} == {"load_rows": "Completed", "explode": "Failed"}
    assert "hunter2" not in text and record["parameters"]["password"] == "****"
