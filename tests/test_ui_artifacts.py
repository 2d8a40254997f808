"""What the Prefect UI shows about a pipeline run's data, read back from the real server the suite starts:
the per-pipeline data-flow artifact (every task run's inputs and outputs), the per-task-run artifact
(`dbnd-<task>-io`, for task runs that reused a version, failed, or logged metrics or tracked data), and the
Version, Tags and Cache Key of each task run, for a first run, a fully reused re-run and a failing run."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.prefect_ui.data_flow import wait_until_published
from dbnd_prefect.prefect_ui.io_artifacts import data_flow_markdown, short_uri, task_io_markdown
from dbnd_prefect.prefect_ui.task_io import DataRef, TaskRunIO, browse_url
from dbnd_prefect.context import last_run


@task
def ui_rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "label": [f"r{i}" for i in range(n)]})


@task(task_version="3")
def ui_total(frame: pd.DataFrame) -> dict:
    return {"sum": int(frame["x"].sum())}


@task
def ui_explode(frame: pd.DataFrame) -> int:
    raise ValueError("ui_explode fails on purpose")


@pipeline
def ui_flow(n: int = 5):
    return ui_total(ui_rows(n))


@pipeline
def ui_failing(n: int = 4):
    return ui_explode(ui_rows(n))


def _artifacts(flow_run_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    wait_until_published()
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found}


def _task_runs(flow_run_id: str, timeout: float = 30) -> dict[str, Any]:
    """The task runs of a flow run once the server has recorded their final states (it does so from events)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        if all(r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
            return {r.name.rsplit("-", 1)[0]: r for r in runs}
        time.sleep(0.3)


def _row(markdown: str, task_name: str) -> str:
    """The data-flow table's row of a task."""
    return next(line for line in markdown.splitlines() if line.startswith(f"| {task_name}<br>"))


def _ui_url() -> str:
    from prefect.settings import PREFECT_UI_URL

    return str(PREFECT_UI_URL.value()).rstrip("/")


def _entry(task_name: str) -> dict[str, Any]:
    return next(e for e in last_run().task_runs if e["task"] == task_name)


def _manifest(task_name: str) -> dict[str, Any]:
    return json.loads(Path(_entry(task_name)["manifest"]).read_text())


def test_first_run_shows_what_each_task_read_and_wrote(workdir: Path) -> None:
    assert ui_flow(n=5) == {"sum": 10}
    run = last_run()
    artifacts = _artifacts(run.flow_run_id)
    # task runs that ran and logged nothing get no artifact of their own: the data flow shows all they did
    assert "dbnd-ui-flow-data-flow" in artifacts
    assert not {"dbnd-ui-rows-io", "dbnd-ui-total-io"} & set(artifacts)

    rows, total = _entry("ui_rows"), _entry("ui_total")
    rows_uri = rows["outputs"]["result"]
    manifest = _manifest("ui_rows")
    flow_md = artifacts["dbnd-ui-flow-data-flow"].data
    assert artifacts["dbnd-ui-flow-data-flow"].task_run_id is None
    assert "2 task runs: 2 ran, 0 reused" in flow_md
    rows_line = _row(flow_md, "ui_rows")
    # a long local path: shortened in the table, a file:// link to the whole path with the path as its tooltip
    shown = short_uri(rows_uri)
    assert len(shown) < len(rows_uri) and shown.endswith("/result.parquet")
    assert f'wrote **result** [{shown}](file://{rows_uri} "{rows_uri}")' in rows_line
    assert "<br>parquet · 5 rows · " in rows_line  # format and rows
    assert manifest["outputs"]["result"]["checksum"][:12] in rows_line
    assert f"`{rows['signature'][:12]}`" in rows_line and "| Completed |" in rows_line

    total_line = _row(flow_md, "ui_total")
    assert f"read **frame** [{shown}]" in total_line and f"from ui_rows `{rows['signature'][:12]}`" in total_line
    assert " · v3 |" in total_line and total["outputs"]["result"] in total_line  # task version 3
    assert flow_md.count(f'(file://{rows_uri} "{rows_uri}")') == 2, "written by ui_rows and read by ui_total"
    assert f"- ui_rows wrote result: [{rows_uri}](file://{rows_uri})" in flow_md, "the whole path, once, below"

    labels = _task_runs(run.flow_run_id)
    assert labels["ui_total"].task_version == f"v3 · local · {total['signature'][:12]}"
    assert {"dbnd", "env:local", f"signature:{total['signature'][:12]}", "task_version:3"} <= set(labels["ui_total"].tags)
    assert labels["ui_rows"].cache_key.endswith(rows["signature"])


def test_fully_reused_rerun_says_which_run_made_each_version(workdir: Path) -> None:
    ui_flow(n=6)
    first = last_run().flow_run_id
    first_name = last_run().flow_run_name
    ui_flow(n=6)
    second = last_run()
    assert {e["state"] for e in second.task_runs} == {"Cached"}

    artifacts = _artifacts(second.flow_run_id)
    rows_md = artifacts["dbnd-ui-rows-io"].data
    assert "ui_rows: reused a stored version" in rows_md
    assert f"flow run **{first_name}** (`{first}`)" in rows_md
    assert "the task body did not run" in rows_md and "**Reused**" in rows_md and "| 6 |" in rows_md
    flow_md = artifacts["dbnd-ui-flow-data-flow"].data
    assert "2 task runs: 0 ran, 2 reused" in flow_md
    made_by = f'made by<br>[{first_name}]({_ui_url()}/runs/flow-run/{first} "flow run {first}")'
    assert flow_md.count(made_by) == 2, "each row links the flow run that made the version"

    # the same key in both runs: Prefect's history of the key compares them
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        history = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["dbnd-ui-flow-data-flow"])))
    assert {str(a.flow_run_id) for a in history} >= {first, second.flow_run_id}

    labels = _task_runs(second.flow_run_id)
    assert labels["ui_rows"].state_name == "Cached"
    assert labels["ui_rows"].task_version.endswith(_entry("ui_rows")["signature"][:12])


def test_failing_run_still_shows_its_data_flow(workdir: Path) -> None:
    with pytest.raises(ValueError, match="on purpose"):
        ui_failing(n=4)
    run = last_run()
    artifacts = _artifacts(run.flow_run_id)
    flow_md = artifacts["dbnd-ui-failing-data-flow"].data
    assert "Data flow of ui_failing: Failed" in flow_md
    assert "| Failed |" in _row(flow_md, "ui_explode")
    assert "ui_explode: failed" in artifacts["dbnd-ui-explode-io"].data
    assert "No output written." in artifacts["dbnd-ui-explode-io"].data
    assert "dbnd-ui-rows-io" not in artifacts, "ui_rows ran and logged nothing: the data flow shows it"
    assert _entry("ui_rows")["outputs"]["result"] in flow_md


def test_task_artifacts_per_pipeline_run_are_capped(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ui_flow(n=3)
    monkeypatch.setenv("DBND_TASK_ARTIFACTS_MAX", "1")
    ui_flow(n=3)  # both reused: each would get an artifact of its own
    artifacts = _artifacts(last_run().flow_run_id)
    assert "dbnd-ui-rows-io" in artifacts and "dbnd-ui-total-io" not in artifacts
    flow_md = artifacts["dbnd-ui-flow-data-flow"].data
    assert "Task-run artifacts for 1 of 2 task runs" in flow_md
    assert "| Cached<br>made by<br>" in _row(flow_md, "ui_total")


def test_the_next_call_starts_once_the_data_flow_of_the_last_one_is_in_prefect(workdir: Path) -> None:
    """Back-to-back calls: the data flow of a call is sent after it returns, and the next top-level call waits
    for it before creating its flow run (Prefect's SQLite server answers a flow-run create that meets artifact
    writes with 503, and its client then retries only 2 s later)."""
    from prefect.client.orchestration import get_client

    ui_flow(n=7)
    first = last_run().flow_run_id
    ui_flow(n=8)
    second = last_run().flow_run_id
    made = _artifacts(first)
    with get_client(sync_client=True) as client:
        second_created = client.read_flow_run(second).created
    assert made["dbnd-ui-flow-data-flow"].created <= second_created


def test_long_uris_are_shortened_in_tables_and_given_whole_below() -> None:
    """A table cell shows a long URI as scheme and bucket (or a local path's first folder), an ellipsis and the
    last path parts, linked to the whole URI (its tooltip too); a list under the table gives it in full."""
    deep = "/".join(f"level-{i}-of-a-deep-data-root" for i in range(6))
    s3_out = f"s3://analytics-bucket/{deep}/prod/2025-01-02/train/train_3fa2c1d9e0b1c2d3/result.parquet"
    local_in = f"/srv/{deep}/prod/2025-01-02/load/load_0123456789abcdef/result.parquet"
    assert short_uri(s3_out) == "s3://analytics-bucket/…/result.parquet"
    assert short_uri(local_in) == "/srv/…/result.parquet"
    assert short_uri("s3://bucket/short.csv") == "s3://bucket/short.csv", "a short URI is shown whole"
    for uri in (s3_out, local_in, "gs://b/" + "x" * 90 + ".csv", "/" + "y" * 90, "s3://" + "b" * 60 + "/k.csv"):
        assert len(short_uri(uri)) <= 40 and "…" in short_uri(uri)
    assert short_uri("C:\\data\\" + "z" * 40 + "\\out.csv").startswith("C:\\…\\"), "Windows paths too"

    io = TaskRunIO(task="train", task_run_id=None, state="Completed", signature="3fa2c1d9e0b1c2d3" * 4,
                   inputs=[DataRef("raw", local_in, format="parquet", producer_task="load",
                                   producer_signature="0123456789abcdef" * 4)],
                   outputs=[DataRef("result", s3_out, format="parquet", rows=5, bytes=2048, checksum="c" * 64)])
    flow_md = data_flow_markdown("p", "Completed", [io])
    task_md = task_io_markdown(io)
    for markdown in (flow_md, task_md):
        table = "\n".join(line for line in markdown.splitlines() if line.startswith("|"))
        assert set(re.findall(r"\[([^\]]*)\]\(", table)) == {short_uri(s3_out), short_uri(local_in)}
        assert f'[s3://analytics-bucket/…/result.parquet]({browse_url(s3_out)} "{s3_out}")' in table
        assert f'[/srv/…/result.parquet](file://{local_in} "{local_in}")' in table
        below = markdown.split("**Full URIs**", 1)[1]
        assert f"[{s3_out}]({browse_url(s3_out)})" in below and f"[{local_in}](file://{local_in})" in below
