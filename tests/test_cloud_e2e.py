"""The seed command line end to end on real object-store emulators (moto S3, Azurite, fake-gcs-server).

`dbnd run prepare_data --set prepare_data.raw_data=s3://BUCKET/file.json` (and .csv, and on az://, gs://)
must give the same outputs as the same data on local disk; a bucket can be the data root (a URI or a saved
Prefect storage block); a second run reuses outputs because the input's ETag / generation did not change,
and recomputes once the object is overwritten; and every store failure a user can meet is one line naming
the URI, with no credential text. All servers are real and listen on 127.0.0.1 (tests/servers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from dbnd_prefect.pytest_plugin import CmdResult, run_cmd
from flows.sample_data import wine_quality_frame
from tests import servers
from tests.conftest import REPO
from tests.servers import Server

ROWS = 40
FRAME = wine_quality_frame(rows=ROWS)
# The same bytes go to local disk and to every store.
INPUTS = {"json": FRAME.to_json().encode(), "csv": FRAME.to_csv(index=False).encode()}
CHANGED_CSV = wine_quality_frame(rows=ROWS + 8, seed=11).to_csv(index=False).encode()
TOML = '[run]\ndata_root = "data"\nmodules = ["flows.prepare_data"]\n'
VERSION_KEY = {"s3": "etag", "az": "etag", "gs": "generation"}
# Set only in the environment of tests that use them, so that they must never be printed.
RAW_GCS_TOKEN = "ya29.dbnd-e2e-RawAccessToken-0123456789"


@dataclass
class Store:
    """One bucket/container on one emulator, reached with the store's own client (not the code under test)."""

    protocol: str
    bucket: str
    server: Server
    secrets: tuple[str, ...]

    def uri(self, key: str) -> str:
        return f"{self.protocol}://{self.bucket}/{key}"

    def put(self, key: str, data: bytes) -> None:
        if self.protocol == "s3":
            self._s3().put_object(Bucket=self.bucket, Key=key, Body=data)
        elif self.protocol == "az":
            with self._az() as container:
                container.upload_blob(key, data, overwrite=True)
        else:
            url = (f"{self.server.url}/upload/storage/v1/b/{self.bucket}/o?uploadType=media&"
                   f"name={urllib.parse.quote(key, safe='')}")
            request = urllib.request.Request(url, data=data, method="POST",
                                             headers={"Content-Type": "application/octet-stream"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200

    def version(self, key: str) -> str:
        """The object's ETag (S3, Azure) or generation (GCS)."""
        return self.listing(key)[key][0]

    def listing(self, prefix: str) -> dict[str, tuple[str, str]]:
        """key -> (ETag or generation, last modified) of every object under `prefix`."""
        if self.protocol == "s3":
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return {o["Key"]: (o["ETag"].strip('"'), str(o["LastModified"]))
                    for page in pages for o in page.get("Contents", [])}
        if self.protocol == "az":
            with self._az() as container:
                return {b.name: (b.etag.strip('"'), str(b.last_modified))
                        for b in container.list_blobs(name_starts_with=prefix)}
        url = f"{self.server.url}/storage/v1/b/{self.bucket}/o?prefix={urllib.parse.quote(prefix, safe='')}"
        with urllib.request.urlopen(url, timeout=10) as response:
            items = json.load(response).get("items", [])
        return {i["name"]: (str(i["generation"]), i["updated"]) for i in items}

    def _s3(self):
        import boto3

        # a new session: boto3's default one keeps the first credentials it ever saw
        return boto3.session.Session().client(
            "s3", endpoint_url=self.server.url, region_name=servers.AWS_REGION,
            aws_access_key_id=servers.AWS_ACCESS_KEY_ID, aws_secret_access_key=servers.AWS_SECRET_ACCESS_KEY)

    def _az(self):
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(
            servers.azurite_connection_string(self.server.url), self.bucket)


@pytest.fixture(params=["s3", "az", "gs"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        return Store("s3", bucket, request.getfixturevalue("s3_server"), (servers.AWS_SECRET_ACCESS_KEY,))
    if request.param == "az":
        bucket = request.getfixturevalue("az_container")
        return Store("az", bucket, request.getfixturevalue("azurite_server"),
                     (servers.AZURITE_KEY, os.environ["AZURE_STORAGE_CONNECTION_STRING"]))
    bucket = request.getfixturevalue("gcs_bucket")
    return Store("gs", bucket, request.getfixturevalue("gcs_server"), ())


@pytest.fixture
def project(workdir: Path) -> Path:
    """The test's working directory as a user's project: data root `data/`, the example module listed."""
    (workdir / "dbnd.toml").write_text(TOML)
    return workdir


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """Storage options registered by a run (a block's credentials) do not leak into the next test."""
    yield
    from dbnd_prefect import storage
    from dbnd_prefect.cloud import CLOUD_PROTOCOLS
    from dbnd_prefect.targets import clear_filesystem_cache, register_storage_options

    for protocol in CLOUD_PROTOCOLS:
        register_storage_options(protocol, {})
    storage._cloud_registered = False  # the next run registers the environment's options again
    clear_filesystem_cache()


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """prepare_data's (train, validation) from a local run on the same bytes, per input format."""
    from dbnd_prefect.api import load_task_outputs
    from dbnd_prefect.config import reset_config_cache

    folder = tmp_path_factory.mktemp("local-run")
    (folder / "dbnd.toml").write_text(TOML)
    found = {}
    before = os.getcwd()
    os.chdir(folder)
    reset_config_cache()
    try:
        for fmt, data in INPUTS.items():
            (folder / f"file.{fmt}").write_bytes(data)
            result = run_cmd(["run", "prepare_data", "--set", f"prepare_data.raw_data=file.{fmt}"])
            assert result.exit_code == 0, result.stderr
            outputs = load_task_outputs(result.run, "prepare_data")
            found[fmt] = (outputs["result_1"], outputs["result_2"])
    finally:
        os.chdir(before)
        reset_config_cache()
    assert len(found["csv"][0]) + len(found["csv"][1]) == ROWS
    return found


def dbnd(*args: str) -> CmdResult:
    return run_cmd(["run", "prepare_data", *args])


def outputs_of(result: CmdResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    from dbnd_prefect.api import load_task_outputs

    loaded = load_task_outputs(result.run, "prepare_data")
    return loaded["result_1"], loaded["result_2"]


def assert_same_frames(got: tuple[pd.DataFrame, pd.DataFrame], expected: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    for one, other in zip(got, expected):
        pd.testing.assert_frame_equal(one, other)


def manifest_of(result: CmdResult) -> dict:
    from dbnd_prefect.targets import Target

    return Target(result.run.task_runs[0]["manifest"], format="json").load(dict)


def assert_one_line_error(result: CmdResult, exit_code: int, *expected: str, secrets: tuple[str, ...] = ()) -> str:
    """The exit code, a last stderr line naming the problem, and no credential text anywhere."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    if exit_code == 2:  # caught before Prefect was entered: nothing else printed
        assert len(lines) == 1 and result.stdout == "", result.stderr
    line = lines[-1]
    assert line.startswith("dbnd: error: "), result.stderr
    for text in expected:
        assert text in line, line
    for secret in secrets:
        assert secret not in result.stderr + result.stdout, f"credential leaked: {result.stderr}"
    return line


# --- the seed command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_seed_command_line_on_the_store_matches_the_local_run(store: Store, project: Path, fmt: str,
                                                                local_outputs) -> None:
    key = f"in/file.{fmt}"
    store.put(key, INPUTS[fmt])
    result = dbnd("--set", f"prepare_data.raw_data={store.uri(key)}")
    assert result.exit_code == 0, result.stderr
    assert result.run.task_runs[0]["state"] == "Completed"
    assert_same_frames(outputs_of(result), local_outputs[fmt])
    for uri in result.run.task_runs[0]["outputs"].values():  # the default data root: local
        assert uri.startswith(str(project / "data" / "local"))
    [recorded] = manifest_of(result)["inputs"]
    assert recorded["uri"] == store.uri(key)
    # the input is fingerprinted by the store's own version marker, not by downloading it
    assert recorded["fingerprint"] == f"target:{store.uri(key)}:{VERSION_KEY[store.protocol]}:{store.version(key)}"


# --- the store as data root, reuse and recomputation -----------------------------------------------------------


def test_data_root_on_the_store_reuses_until_the_input_is_overwritten(store: Store, project: Path,
                                                                      local_outputs) -> None:
    store.put("in/file.csv", INPUTS["csv"])
    args = ("--set", f"prepare_data.raw_data={store.uri('in/file.csv')}", "--set", f"run.data_root={store.uri('root')}")

    first = dbnd(*args)
    assert first.exit_code == 0, first.stderr
    entry = first.run.task_runs[0]
    assert entry["state"] == "Completed"
    assert first.run.data_root == store.uri("root")
    assert_same_frames(outputs_of(first), local_outputs["csv"])
    written = store.listing("root/")
    folder = entry["manifest"].rsplit("/", 1)[0].removeprefix(f"{store.protocol}://{store.bucket}/")
    assert {f"{folder}/result_1.parquet", f"{folder}/result_2.parquet", f"{folder}/_manifest.json"} <= set(written)
    assert any(k.startswith("root/.dbnd/prefect-records/") for k in written), written  # reuse follows the data
    assert not (project / "data").exists()

    again = dbnd(*args)
    assert again.exit_code == 0, again.stderr
    assert again.run.task_runs[0]["state"] == "Cached"
    assert again.run.task_runs[0]["signature"] == entry["signature"]
    assert store.listing("root/") == written  # nothing rewritten: the task body did not run
    assert manifest_of(again)["prefect"]["task_run_id"] == entry["task_run_id"]
    assert_same_frames(outputs_of(again), local_outputs["csv"])

    old_version = store.version("in/file.csv")
    store.put("in/file.csv", CHANGED_CSV)
    assert store.version("in/file.csv") != old_version
    changed = dbnd(*args)
    assert changed.exit_code == 0, changed.stderr
    assert changed.run.task_runs[0]["state"] == "Completed"
    assert changed.run.task_runs[0]["signature"] != entry["signature"]
    train, validation = outputs_of(changed)
    assert len(train) + len(validation) == ROWS + 8


# --- errors a user can act on ---------------------------------------------------------------------------------


def test_missing_object_and_missing_bucket_are_one_line_before_the_run(store: Store, project: Path) -> None:
    word = "container" if store.protocol == "az" else "bucket"
    missing = store.uri("in/nowhere.csv")
    result = dbnd("--set", f"prepare_data.raw_data={missing}")
    assert_one_line_error(result, 2, f"'{missing}'", "does not exist", secrets=store.secrets)
    assert not any(path.is_file() for path in project.glob("data/**/*"))  # no task ran

    other = servers.unique_name("absent")
    no_bucket = f"{store.protocol}://{other}/in/file.csv"
    line = assert_one_line_error(dbnd("--set", f"prepare_data.raw_data={no_bucket}"), 2, f"'{no_bucket}'",
                                 f"{word} '{other}' does not exist", secrets=store.secrets)
    assert "check the credentials" not in line


def test_data_root_in_a_missing_bucket_fails_the_task_naming_the_output(store: Store, project: Path) -> None:
    # the bucket is first touched when the task writes its outputs: a failed task run, exit code 1
    word = "container" if store.protocol == "az" else "bucket"
    store.put("in/file.csv", INPUTS["csv"])
    other = servers.unique_name("absent")
    result = dbnd("--set", f"prepare_data.raw_data={store.uri('in/file.csv')}",
                  "--set", f"run.data_root={store.protocol}://{other}/root")
    line = assert_one_line_error(result, 1, "task 'prepare_data' failed", f"'{store.protocol}://{other}/root/",
                                 f"{word} '{other}' does not exist", secrets=store.secrets)
    assert "<?xml" not in line


def test_s3_wrong_credentials(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with servers.moto_s3_with_auth() as (server, key_id, secret):
        servers.set_s3_env(monkeypatch, server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        import boto3

        client = boto3.session.Session().client("s3", endpoint_url=server.url)
        client.create_bucket(Bucket="guarded")
        client.put_object(Bucket="guarded", Key="in/file.csv", Body=INPUTS["csv"])
        uri = "s3://guarded/in/file.csv"
        assert dbnd("--set", f"prepare_data.raw_data={uri}").exit_code == 0  # the right key works

        wrong = "Wr0ngSecretKey/" + secret[15:]
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
        servers.clear_filesystem_caches()
        line = assert_one_line_error(dbnd("--set", f"prepare_data.raw_data={uri}"), 2, f"'{uri}'",
                                     "refused the credentials", "AWS_SECRET_ACCESS_KEY", secrets=(secret, wrong))
        assert "file's content" not in line


def test_azure_wrong_account_key(az_container: str, azurite_server: Server, project: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store("az", az_container, azurite_server, ())
    store.put("in/file.csv", INPUTS["csv"])
    wrong_key = "V3JvbmdLZXk" + servers.AZURITE_KEY[11:]
    wrong = servers.azurite_connection_string(azurite_server.url, key=wrong_key)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    servers.clear_filesystem_caches()
    uri = store.uri("in/file.csv")
    assert_one_line_error(dbnd("--set", f"prepare_data.raw_data={uri}"), 2, f"'{uri}'", "refused the credentials",
                          "AZURE_STORAGE_CONNECTION_STRING", secrets=(wrong_key, servers.AZURITE_KEY, wrong))
