"""R7: credentials never leak — after runs that succeed and runs that fail, each secret is searched for everywhere
a run leaves text.

Four kinds of secret, each a recognisable string:
- a Prefect block's: an S3Bucket block with AwsCredentials (key id and secret) is the data root (moto's S3);
- the environment's: AWS_SECRET_ACCESS_KEY;
- a URI's user info: the input is read over HTTP with basic auth, `http://r7user:PASSWORD@127.0.0.1:PORT/...`;
- a config file's: a task parameter `api_token` set in dbnd.toml (and another run sets it with `--set`).

Searched: what `dbnd` printed (stdout, stderr, file-descriptor level too), every object the runs wrote to the
bucket (manifests, run records, outputs), the local project and download cache, and on the Prefect server the
flow runs (with their parameters), task runs, logs, artifacts and events of the runs, and finally the server's
SQLite database file itself (with its write-ahead log).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pandas import DataFrame

from dbnd_prefect import pipeline, task
from dbnd_prefect.pytest_plugin import run_cmd
from tests import servers

BLOCK_KEY_ID = "AKIAR7BLOCKKEYID0123"
BLOCK_SECRET = "r7-block-secret-9f3a1c"
ENV_SECRET = "r7-env-secret-7b2d4e"
URI_PASSWORD = "r7-uri-passw0rd-5c8e"
CONFIG_TOKEN = "r7-config-token-1a6f"
CLI_TOKEN = "r7-cli-token-3d9b"
SECRETS = {"block key id": BLOCK_KEY_ID, "block secret": BLOCK_SECRET, "environment": ENV_SECRET,
           "URI user info": URI_PASSWORD, "config file": CONFIG_TOKEN, "command line": CLI_TOKEN}
CSV = b"x\n1\n2\n3\n"


@task
def r7_load(table: DataFrame) -> DataFrame:
    return table.assign(y=table["x"] * 2)


@task
def r7_publish(frame: DataFrame, api_token: str = "", fail: bool = False) -> dict:
    if fail:
        raise ValueError("the publishing service refused the batch")
    return {"rows": len(frame), "authorised": bool(api_token)}


@pipeline
def r7_pipe(source: str = "input.csv", fail: bool = False):
    return r7_publish(r7_load(source), fail=fail)


@pytest.fixture
def http_input() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that serves /input.csv to r7user:URI_PASSWORD only; its base URL with user info."""
    expected = "Basic " + base64.b64encode(f"r7user:{URI_PASSWORD}".encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="r7"')
                self.end_headers()
                return
            if self.path.split("?")[0] != "/input.csv":
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(CSV)))
            self.end_headers()
            if body:
                self.wfile.write(CSV)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://r7user:{URI_PASSWORD}@127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def project(tmp_path, monkeypatch, s3_bucket, s3_server) -> Iterator[Path]:
    """A project whose data root is an S3Bucket block with credentials, with a token in its dbnd.toml and the AWS
    secret in the environment."""
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    from dbnd_prefect.config import reset_config_cache

    block = servers.unique_name("r7")
    S3Bucket(bucket_name=s3_bucket, bucket_folder="root", credentials=AwsCredentials(
        aws_access_key_id=BLOCK_KEY_ID, aws_secret_access_key=BLOCK_SECRET, region_name=servers.AWS_REGION,
        aws_client_parameters=AwsClientParameters(endpoint_url=s3_server.url))).save(block)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)  # moto accepts any secret
    (tmp_path / "dbnd.toml").write_text(
        f'[run]\nstorage_block = "s3-bucket/{block}"\n\n[r7_publish]\napi_token = "{CONFIG_TOKEN}"\n')
    cache = tmp_path / "download-cache"
    monkeypatch.setenv("DBND_CACHE_DIR", str(cache))
    for name in [n for n in os.environ if n.startswith("DBND__")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    reset_config_cache()
    yield tmp_path
    reset_config_cache()
    from dbnd_prefect.targets.filesystem import register_storage_options

    register_storage_options("s3", {})


def bucket_text(bucket: str, url: str) -> str:
    """Every object in the bucket: its key and its bytes (decoded loosely)."""
    import boto3

    s3 = boto3.session.Session().client("s3", endpoint_url=url, region_name=servers.AWS_REGION,
                                        aws_access_key_id="reader", aws_secret_access_key="reader")
    parts = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            parts.append(f"{item['Key']}\n{body.decode('utf-8', 'replace')}")
    return "\n".join(parts)


def local_text(root: Path) -> str:
    """Every file below `root`: its path and its bytes (decoded loosely)."""
    return "\n".join(f"{p}\n{p.read_bytes().decode('utf-8', 'replace')}" for p in sorted(root.rglob("*"))
                     if p.is_file())


def prefect_text(flow_run_ids: list[str], since) -> tuple[str, dict[str, int]]:
    """The runs as the Prefect server keeps them: flow runs (parameters included), task runs, logs, artifacts and
    every event since `since`; and how many of each were read."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, \
        FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.events.filters import EventFilter, EventOccurredFilter

    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=flow_run_ids)))
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=flow_run_ids)), limit=200)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=flow_run_ids)))
        page = client.read_events(filter=EventFilter(occurred=EventOccurredFilter(since=since)), limit=50)
        events = list(page.events)
        while page.next_page and len(events) < 5000:
            page = client.read_events_page(page.next_page)
            events += page.events
    found = {"flow runs": len(flow_runs), "task runs": len(task_runs), "logs": len(logs),
             "artifacts": len(artifacts), "events": len(events)}
    text = "\n".join(item.model_dump_json() for group in (flow_runs, task_runs, logs, artifacts, events)
                     for item in group)
    return text, found


def drain_prefect() -> None:
    """Send the logs and events this process has queued, so the server holds everything the runs produced."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    from dbnd_prefect.prefect_ui.data_flow import wait_until_published

    wait_until_published()
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)


def hits(text: str) -> dict[str, list[str]]:
    """Per kind of secret found in `text`: where (up to 3 snippets around it, the secret itself shown as <kind>)."""
    found = {}
    for kind, secret in SECRETS.items():
        starts = [i for i in range(len(text)) if text.startswith(secret, i)][:3] if secret in text else []
        if starts:
            found[kind] = [text[max(0, i - 100):i + len(secret) + 60].replace(secret, f"<{kind}>") for i in starts]
    return found


def test_no_credential_reaches_output_storage_prefect_or_its_database(project, http_input, s3_bucket, s3_server,
                                                                      capfd):
    import datetime as dt

    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    source = f"{http_input}/input.csv"
    runs = {
        "succeeds": (["run", "r7_pipe", "--set", f"source={source}"], 0),
        "task fails": (["run", "r7_pipe", "--set", f"source={source}", "--set", "fail=true"], 1),
        "token on the command line": (["run", "r7_pipe", "--set", f"source={source}", "--set",
                                       f"r7_publish.api_token={CLI_TOKEN}"], 0),
        "one task, input over HTTP": (["run", "r7_load", "--set", f"table={source}"], 0),
        "input missing (found while loading)": (["run", "r7_pipe", "--set", f"source={http_input}/gone.csv"], 2),
        "input missing (checked before the run)": (["run", "r7_load", "--set", f"table={http_input}/gone.csv"], 2),
        "wrong password": (["run", "r7_load", "--set", f"table={http_input.replace(URI_PASSWORD, 'wrong-pw')}"
                                                       "/input.csv"], 2),
    }
    printed, flow_run_ids = [], []
    for name, (args, code) in runs.items():
        result = run_cmd(args)
        assert result.exit_code == code, f"{name}: {result}"
        printed += [result.stdout, result.stderr]
        if result.run is not None and result.run.flow_run_id:
            flow_run_ids.append(str(result.run.flow_run_id))
    assert "rows" in printed[0] or "r7_publish: Completed" in printed[0], printed[0]
    assert len(flow_run_ids) >= 4  # the runs that reached Prefect: the successes and the task failure at least
    drain_prefect()
    captured = capfd.readouterr()
    printed += [captured.out, captured.err]

    # the success really used every secret: the block's credentials wrote to the bucket, the token was passed
    stored = bucket_text(s3_bucket, s3_server.url)
    assert "r7_publish" in stored and '"authorised": true' in stored.replace("'", '"'), stored[:2000]

    places = {"printed by dbnd": "\n".join(printed), "bucket (manifests, run records, outputs)": stored,
              "project folder (but the dbnd.toml holding the token) and download cache":
                  local_text(project).replace(f'api_token = "{CONFIG_TOKEN}"', "", 1)}
    deadline = time.monotonic() + 30
    while True:  # the server stores events a moment after it receives them
        text, found = prefect_text(flow_run_ids, since)
        if "prefect.asset.materialization.succeeded" in text or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert found["flow runs"] == len(flow_run_ids) and found["task runs"] >= 3 and found["logs"] > 0, found
    assert found["artifacts"] > 0 and found["events"] > 0 and "prefect.asset.materialization.succeeded" in text, found
    places["Prefect API: flow runs, task runs, logs, artifacts, events"] = text
    home = Path(os.environ["PREFECT_HOME"])
    database = b"".join(p.read_bytes() for p in sorted(home.glob("prefect.db*")))
    assert len(database) > 100_000  # the suite's server keeps its SQLite database here
    places["Prefect server database (SQLite file and WAL)"] = database.decode("utf-8", "replace")

    leaks = {place: found for place, text in places.items() if (found := hits(text))}
    print(f"R7: {len(runs)} runs, {len(SECRETS)} secrets searched in {len(places)} places "
          f"({', '.join(places)}); {sum(len(v) for v in leaks.values())} leaks")
    assert leaks == {}, json.dumps(leaks, indent=1)
