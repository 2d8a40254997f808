"""Lineage through the Prefect API: the events a pipeline run leaves on the real server the suite starts (one
per output: a Prefect asset materialization with dbnd's labels, its inputs and upstream assets, or
`dbnd.output.reused`), read back through `/events/filter`; and no credentials in any artifact or event, also for
data on S3 (moto)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.prefect_ui.task_io import DataRef, TaskRunIO
from dbnd_prefect.context import last_run


@task
def lin_source(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


@task
def lin_double(frame: pd.DataFrame) -> pd.DataFrame:
    return frame * 2


@task
def lin_read(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.head(2)


@pipeline
def lin_flow(n: int = 3):
    return lin_double(lin_source(n))


@pipeline
def lin_cloud(raw: pd.DataFrame):
    return lin_read(raw)


def _events(flow_run_id: str, expected: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The dbnd and asset events related to a flow run, once at least `expected` have arrived."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    from dbnd_prefect.prefect_ui.data_flow import wait_until_published

    wait_until_published()
    flt = EventFilter(event=EventNameFilter(prefix=["dbnd.", "prefect.asset."]),
                      related=EventRelatedFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            page = client.read_events(filter=flt, limit=50)
        events = [e.model_dump(mode="json") for e in page.events]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def _related(event: dict[str, Any], role: str) -> list[str]:
    return [r["prefect.resource.id"] for r in event["related"] if r["prefect.resource.role"] == role]


def _entry(name: str) -> dict[str, Any]:
    return next(e for e in last_run().task_runs if e["task"] == name)


def test_each_written_output_is_an_event_and_an_asset_with_its_upstream(workdir: Path) -> None:
    lin_flow(n=3)
    run = last_run()
    source, double = _entry("lin_source"), _entry("lin_double")
    source_uri, double_uri = (f"file://{e['outputs']['result']}" for e in (source, double))
    events = _events(run.flow_run_id, expected=2)  # one per output written: its asset materialization
    assert len(events) == 2 and {e["event"] for e in events} == {"prefect.asset.materialization.succeeded"}
    materialized = {e["resource"]["prefect.resource.id"]: e for e in events}
    assert set(materialized) == {source_uri, double_uri}

    downstream = materialized[double_uri]
    assert downstream["resource"]["dbnd.task"] == "lin_double"
    assert downstream["resource"]["dbnd.signature"] == double["signature"]
    assert downstream["resource"]["dbnd.rows"] == "3" and downstream["resource"]["dbnd.format"] == "parquet"
    assert _related(downstream, "task-run") == [f"prefect.task-run.{double['task_run_id']}"], (downstream, last_run().task_runs)
    assert _related(downstream, "input") == [source_uri]
    assert f"prefect.flow-run.{run.flow_run_id}" in _related(downstream, "flow-run")
    assert _related(downstream, "asset") == [source_uri], "the upstream asset"
    assert _related(materialized[source_uri], "asset") == []
    assert downstream["payload"]["signature"] == double["signature"]


def test_an_output_that_is_no_asset_key_is_a_written_event() -> None:
    from dbnd_prefect.prefect_ui import lineage

    io = TaskRunIO(task="t", task_run_id="00000000-0000-0000-0000-000000000001", state="Completed",
                   signature="ab" * 16, inputs=[DataRef("raw", "/data/in put.csv")],
                   outputs=[DataRef("out", "/data/with space/out.parquet", format="parquet", rows=1)])
    events = lineage.events_for(io, "00000000-0000-0000-0000-000000000002")
    assert [e["event"] for e in events] == ["dbnd.output.written"]
    assert events[0]["resource"]["dbnd.task"] == "t"
    assert [r["prefect.resource.id"] for r in events[0]["related"] if r["prefect.resource.role"] == "input"] == [
        "file:///data/in put.csv"]


def test_reused_outputs_name_the_run_that_made_them_and_materialize_nothing(workdir: Path) -> None:
    lin_flow(n=4)
    first = last_run().flow_run_id
    lin_flow(n=4)
    second = last_run().flow_run_id
    events = _events(second, expected=2)
    assert {e["event"] for e in events} == {"dbnd.output.reused"}
    assert len(events) == 2
    for event in events:
        assert _related(event, "made-by-flow-run") == [f"prefect.flow-run.{first}"]
        assert f"prefect.flow-run.{second}" in _related(event, "flow-run")


def test_failed_task_writes_no_lineage(workdir: Path) -> None:
    @task
    def lin_fails(frame: pd.DataFrame) -> int:
        raise RuntimeError("lin_fails on purpose")

    @pipeline
    def lin_failing(n: int = 2):
        return lin_fails(lin_source(n))

    with pytest.raises(RuntimeError, match="on purpose"):
        lin_failing(n=2)
    events = _events(last_run().flow_run_id, expected=1)
    assert {e["resource"].get("dbnd.task") for e in events} == {"lin_source"}


def test_no_credentials_in_artifacts_or_events_for_data_on_s3(workdir: Path, s3_bucket: str) -> None:
    from tests import servers

    from dbnd_prefect.config import reset_config_cache
    from dbnd_prefect.prefect_ui.data_flow import wait_until_published
    from dbnd_prefect.targets import Target

    (workdir / "dbnd.toml").write_text(f'[run]\ndata_root = "s3://{s3_bucket}/data"\n')
    reset_config_cache()
    raw = f"s3://{s3_bucket}/in/raw.csv"
    Target(raw).save(pd.DataFrame({"x": [1, 2, 3]}))
    lin_cloud(raw=raw)
    run = last_run()
    out = _entry("lin_read")["outputs"]["result"]
    assert out.startswith(f"s3://{s3_bucket}/data/")
    events = _events(run.flow_run_id, expected=1)
    written = next(e for e in events if e["event"] == "prefect.asset.materialization.succeeded")
    assert written["resource"]["prefect.resource.id"] == out and _related(written, "input") == [raw]

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    wait_until_published()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.flow_run_id])))
    io = next(a for a in artifacts if a.key == "dbnd-lin-cloud-data-flow").data
    endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    assert f"[{out}]({endpoint}/{out[len('s3://'):]})" in io, "an S3 output links to its store"
    shown = json.dumps(events) + json.dumps([a.model_dump(mode="json") for a in artifacts])
    for secret in (servers.AWS_SECRET_ACCESS_KEY, servers.AWS_ACCESS_KEY_ID):
        assert secret not in shown


def test_uris_with_credentials_are_redacted_in_artifacts_and_events() -> None:
    """URIs as a manifest may hold them (user info, a SAS token): shown and emitted without the secrets."""
    from dbnd_prefect.prefect_ui import io_artifacts as run_artifacts, lineage

    secret = "s3cr3t-Pa55word-xyz"
    io = TaskRunIO(
        task="t", task_run_id="00000000-0000-0000-0000-000000000001", state="Completed", signature="ab" * 16,
        inputs=[DataRef("raw", f"https://acct.blob.core.windows.net/c/raw.csv?sv=2024&sig={secret}")],
        outputs=[DataRef("out", f"s3://user:{secret}@bucket/out.parquet", format="parquet", bytes=10, rows=1)])
    shown = run_artifacts.task_io_markdown(io) + run_artifacts.data_flow_markdown("p", "Completed", [io])
    shown += json.dumps(lineage.events_for(io, "00000000-0000-0000-0000-000000000002"), default=str)
    assert secret not in shown
    assert "bucket/out.parquet" in shown and "raw.csv" in shown


def test_a_prefect_api_that_stops_answering_costs_a_warning_not_a_hung_process(caplog):
    """The data flow is sent in the background and drained at exit: an API that accepts connections but never
    answers must not hold the process (Prefect drains its services without a time limit)."""
    import socket
    import threading

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from dbnd_prefect.prefect_ui import data_flow

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts (the kernel's backlog), never reads or answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
    entries = [{"task": "lin_source", "task_run_id": None, "state": "Completed"}]  # no outputs: no lineage events
    old_timeout = data_flow.PUBLISH_TIMEOUT
    data_flow.PUBLISH_TIMEOUT = 2.0
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            data_flow.DataFlowPublisher.instance(url).send(("lin_flow", entries, "00000000-0000-0000-0000-000000000000",
                                                            "Completed"))
            started = time.monotonic()
            done = threading.Event()
            threading.Thread(target=lambda: (data_flow.wait_until_published(timeout=30), done.set()),
                             daemon=True).start()
            assert done.wait(60), "draining the data-flow publisher hung on an API that does not answer"
    finally:
        data_flow.PUBLISH_TIMEOUT = old_timeout
        silent.close()
    assert time.monotonic() - started < 30  # the publish gave up on its own bound, not the drain's
    assert any("data flow was not shown in Prefect" in r.getMessage() for r in caplog.records)
