"""Signature-addressed outputs, verified reuse, plan reasons and manifests, on a real Prefect server."""

from __future__ import annotations

import json
import logging
import os
import textwrap
import time
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.config import config_context
from dbnd_prefect.planning import plan
from dbnd_prefect.run_context import last_run

calls: dict[str, int] = {}


def _count(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


@task
def load_rows(raw: pd.DataFrame) -> pd.DataFrame:
    _count("load_rows")
    return raw[raw["x"] >= 0]


@task
def scale(frame: pd.DataFrame, factor: float = 2.0) -> pd.DataFrame:
    _count("scale")
    return frame.assign(x=frame["x"] * factor)


@task
def summarize(frame: pd.DataFrame) -> dict:
    _count("summarize")
    return {"rows": int(len(frame)), "total": float(frame["x"].sum())}


@pipeline
def chain(raw: pd.DataFrame):
    rows = load_rows(raw)
    scaled = scale(rows)
    return summarize(scaled), summarize(rows)


@pytest.fixture
def raw_csv(workdir: Path) -> Path:
    calls.clear()
    path = workdir / "raw.csv"
    pd.DataFrame({"x": [1, 2, 3, -1]}).to_csv(path, index=False)
    return path


def _states() -> dict[str, str]:
    return {e["task"] + str(i): e["state"] for i, e in enumerate(last_run().task_runs)}


def test_unchanged_rerun_reuses_everything(raw_csv):
    first = chain("raw.csv")
    assert calls == {"load_rows": 1, "scale": 1, "summarize": 2}
    second = chain("raw.csv")
    assert second == first == ({"rows": 3, "total": 12.0}, {"rows": 3, "total": 6.0})
    assert calls == {"load_rows": 1, "scale": 1, "summarize": 2}, "a task body ran again"
    assert set(_states().values()) == {"Cached"}


def test_cached_state_is_visible_through_the_prefect_api(raw_csv):
    chain("raw.csv")
    chain("raw.csv")
    from prefect.client.orchestration import get_client

    from prefect.exceptions import ObjectNotFound

    ids = [e["task_run_id"] for e in last_run().task_runs]
    names: set = set()
    deadline = time.monotonic() + 30  # task runs reach the API through events, a moment later
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                names = {getattr(client.read_task_run(i).state, "name", None) for i in ids}
            except ObjectNotFound:
                names = set()
            if names == {"Cached"}:
                break
            time.sleep(0.5)
    assert names == {"Cached"}


def test_in_place_edit_of_input_file_is_detected(raw_csv):
    chain("raw.csv")
    stat = raw_csv.stat()
    pd.DataFrame({"x": [5, 6, 7, -1]}).to_csv(raw_csv, index=False)  # same size, new content
    os.utime(raw_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert chain("raw.csv") == ({"rows": 3, "total": 36.0}, {"rows": 3, "total": 18.0})
    assert calls["load_rows"] == 2


def test_parameter_change_reruns_only_that_task_and_dependants(raw_csv):
    chain("raw.csv")
    with config_context({"scale.factor": "3"}):
        result = chain("raw.csv")
    assert result == ({"rows": 3, "total": 18.0}, {"rows": 3, "total": 6.0})
    assert calls == {"load_rows": 1, "scale": 2, "summarize": 3}


def test_task_version_now_recomputes_everything(raw_csv):
    chain("raw.csv")
    with config_context({"run.task_version": "now"}):
        chain("raw.csv")
    assert calls == {"load_rows": 2, "scale": 2, "summarize": 4}


def test_deleted_output_is_recomputed_with_a_warning(raw_csv, caplog):
    chain("raw.csv")
    scaled_uri = next(e for e in last_run().task_runs if e["task"] == "scale")["outputs"]["result"]
    Path(scaled_uri).unlink()
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        chain("raw.csv")
    assert calls["scale"] == 2 and calls["load_rows"] == 1
    assert Path(scaled_uri).exists()
    assert any("scale" in r.getMessage() and "missing" in r.getMessage() for r in caplog.records)


def test_tampered_output_is_recomputed_with_a_warning(raw_csv, caplog):
    chain("raw.csv")
    rows_uri = next(e for e in last_run().task_runs if e["task"] == "load_rows")["outputs"]["result"]
    pd.DataFrame({"x": [100, 200, 300]}).to_parquet(rows_uri)
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        result = chain("raw.csv")
    assert result == ({"rows": 3, "total": 12.0}, {"rows": 3, "total": 6.0}), "a tampered output was returned"
    assert calls["load_rows"] == 2
    assert any("load_rows" in r.getMessage() for r in caplog.records)


def test_outputs_live_at_signature_addressed_paths(raw_csv):
    chain("raw.csv")
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    path = Path(entry["outputs"]["result"])
    assert path.parent.name == f"scale_{entry['signature'][:16]}"
    assert path.parent.parent.name == "scale" and path.parents[3].name == "local"
    assert (path.parent / "_manifest.json").is_file()


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


HELPER_MODULE = """
from dbnd_prefect import task

def helper_b(x):
    return x + {inc}

def helper_a(x):
    return helper_b(x) * 2

def unrelated():
    return {unrelated}

@task
def compute(x: int) -> int:
    print("BODY-RAN")
    return helper_a(x)
"""


def test_helper_function_change_invalidates_but_unrelated_change_does_not(workdir):
    from tests.conftest import run_python

    script = "import sys; sys.path.insert(0, '.'); from mymod import compute; print('VALUE', compute(1))"

    def run(inc: int, unrelated: int) -> str:
        (workdir / "mymod.py").write_text(textwrap.dedent(HELPER_MODULE.format(inc=inc, unrelated=unrelated)))
        proc = run_python("-c", script, cwd=workdir)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert "BODY-RAN" in run(1, 0) and "VALUE 4" in run(1, 0)
    out = run(1, 99)
    assert "BODY-RAN" not in out and "VALUE 4" in out
    out = run(5, 99)
    assert "BODY-RAN" in out and "VALUE 12" in out


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


def test_reproduce_reruns_with_recorded_inputs_and_matches(raw_csv):
    from dbnd_prefect.reproduction import reproduce

    chain("raw.csv")
    entry = next(e for e in last_run().task_runs if e["task"] == "load_rows")
    flow_run_id = json.loads(Path(entry["manifest"]).read_text())["prefect"]["flow_run_id"]
    before = dict(calls)
    report = reproduce(flow_run_id)
    assert {(r.task, r.output) for r in report} == {("load_rows", "result"), ("scale", "result"),
                                                    ("summarize", "result")}
    assert all(r.matches for r in report), [(r.task, r.original_checksum, r.checksum) for r in report]
    assert calls["load_rows"] == before["load_rows"] + 1, "reproduce did not run the task again"


def test_local_file_system_block_as_data_root(raw_csv, workdir):
    from prefect.filesystems import LocalFileSystem

    root = workdir / "block-root"
    LocalFileSystem(basepath=str(root)).save("dbnd-test-root", overwrite=True)
    with config_context({"run.storage_block": "local-file-system/dbnd-test-root"}):
        first = chain("raw.csv")
        assert last_run().data_root == str(root)
        second = chain("raw.csv")
    assert first == second and calls["load_rows"] == 1
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    assert entry["state"] == "Cached" and entry["outputs"]["result"].startswith(str(root / "local"))
    assert list((root / ".dbnd" / "prefect-records").iterdir()), "cache records are not kept with the data"


def test_unknown_storage_block_is_a_clear_error(raw_csv):
    from dbnd_prefect.errors import ConfigError

    with config_context({"run.storage_block": "local-file-system/no-such-block"}):
        with pytest.raises(ConfigError, match="storage block 'local-file-system/no-such-block' could not be loaded"):
            chain("raw.csv")


def test_remote_uri_data_root_keeps_records_there(raw_csv):
    import fsspec

    with config_context({"run.data_root": "memory://dbnd-bucket/root"}):
        chain("raw.csv")
        chain("raw.csv")
    assert calls["scale"] == 1
    fs = fsspec.filesystem("memory")
    assert fs.glob("/dbnd-bucket/root/.dbnd/prefect-records/*")
    assert fs.glob("/dbnd-bucket/root/local/*/scale/scale_*/result.parquet")


@task
def scored(frame: pd.DataFrame) -> float:
    from dbnd_prefect import log_dataframe, log_metric

    log_dataframe("input", frame)
    log_metric("score", 0.75)
    return 0.75


def test_metrics_reach_manifest_and_prefect_artifacts(workdir):
    scored(pd.DataFrame({"x": [1.0, 2.0, None]}))
    entry = last_run().task_runs[0]
    assert json.loads(Path(entry["manifest"]).read_text())["metrics"] == {"score": 0.75}
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["profile-input"])))
    assert found and "| x | float64 | 1 |" in found[0].data


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
    from dbnd_prefect.reproduction import reproduce

    assert outer_untyped("raw.csv") == 6.0
    run = last_run()
    manifest = json.loads(Path(next(e for e in run.task_runs if e["task"] == "apply_fit")["manifest"]).read_text())
    model_input = next(i for i in manifest["inputs"] if i["name"] == "model")
    assert model_input["producer_task"] == "fit" and model_input["uri"].endswith("result.json")
    assert "model" not in manifest["parameters"]
    assert manifest["prefect"]["root_flow_run_id"] == run.flow_run_id != manifest["prefect"]["flow_run_id"]
    report = reproduce(run.flow_run_id)  # the root run's id reaches tasks of the nested pipeline
    assert {r.task for r in report} == {"load_rows", "fit", "apply_fit"} and all(r.matches for r in report)


@task(versioned=False)
def offset(frame: pd.DataFrame, by: int = 1) -> pd.DataFrame:
    _count("offset")
    return frame.assign(x=frame["x"] + by)


@pipeline
def with_glue(raw: pd.DataFrame):
    return summarize(offset(load_rows(raw)))


def test_unversioned_task_always_runs_stores_nothing_and_still_chains(raw_csv, workdir):
    assert with_glue("raw.csv") == {"rows": 3, "total": 9.0}
    entry = next(e for e in last_run().task_runs if e["task"] == "offset")
    assert entry["state"] == "Completed" and entry["outputs"] == {}
    assert not list((workdir / "data").rglob("offset*")), "an unversioned task wrote files"
    assert with_glue("raw.csv") == {"rows": 3, "total": 9.0}
    assert calls == {"load_rows": 1, "offset": 2, "summarize": 1}, "downstream reuse broke"
    with config_context({"offset.by": "2"}):
        assert with_glue("raw.csv") == {"rows": 3, "total": 12.0}
    assert calls["summarize"] == 2
    assert {p.task.name: p.status for p in plan(with_glue, "raw.csv")}["offset"] == "miss"


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
    from dbnd_prefect.reproduction import reproduce

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
