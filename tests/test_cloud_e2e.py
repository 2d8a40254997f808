"""The seed command line end to end on real object-store emulators (moto S3, Azurite, fake-gcs-server).

`dbnd run prepare_data --set prepare_data.raw_data=s3://BUCKET/file.json` (and .csv, and on az://, gs://)
must give the same outputs as the same data on local disk; a bucket can be the data root (a URI or a saved
Prefect storage block); a second run reuses outputs because the input's ETag / generation did not change,
and recomputes once the object is overwritten; and every store failure a user can meet is one line naming
the URI, with no credential text. All servers are real and listen on 127.0.0.1 (tests/servers.py).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from dbnd_prefect.pytest_plugin import CmdResult, run_cmd
from flows.sample_data import wine_quality_frame
from tests import servers
from tests.conftest import REPO
from tests.servers import Server, Store

ROWS = 40
FRAME = wine_quality_frame(rows=ROWS)
# The same bytes go to local disk and to every store.
INPUTS = {"json": FRAME.to_json().encode(), "csv": FRAME.to_csv(index=False).encode()}
CHANGED_CSV = wine_quality_frame(rows=ROWS + 8, seed=11).to_csv(index=False).encode()
TOML = '[run]\ndata_root = "data"\nmodules = ["flows.prepare_data"]\n'
VERSION_KEY = {"s3": "etag", "az": "etag", "gs": "generation"}
# A raw OAuth access token kept in a storage block's settings: it must never be printed.
RAW_GCS_TOKEN = "ya29.dbnd-e2e-RawAccessToken-0123456789"


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
def cloud_options() -> Iterator[None]:
    """Options from the environment, as a run registers them; a block's options registered by one test's run
    (they replace the environment's for the block's protocol) do not leak into the next test."""
    from dbnd_prefect.targets.credentials import register_cloud_options
    from dbnd_prefect.targets import clear_filesystem_cache

    register_cloud_options()
    yield
    register_cloud_options()
    clear_filesystem_cache()


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """prepare_data's (train, validation) from a local run on the same bytes, per input format."""
    from dbnd_prefect.api.results import load_task_outputs
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
    from dbnd_prefect.api.results import load_task_outputs

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
    written = data_objects(store, "root/")
    assert f"root/.dbnd/runs/{first.run.flow_run_id}.json" in store.listing("root/")
    folder = entry["manifest"].rsplit("/", 1)[0].removeprefix(f"{store.protocol}://{store.bucket}/")
    assert {f"{folder}/result_1.parquet", f"{folder}/result_2.parquet", f"{folder}/_manifest.json"} <= set(written)
    assert any(k.startswith("root/.dbnd/prefect-records/") for k in written), written  # reuse follows the data
    assert not (project / "data").exists()

    again = dbnd(*args)
    assert again.exit_code == 0, again.stderr
    assert again.run.task_runs[0]["state"] == "Cached"
    assert again.run.task_runs[0]["signature"] == entry["signature"]
    assert data_objects(store, "root/") == written  # nothing rewritten: the task body did not run
    assert f"root/.dbnd/runs/{again.run.flow_run_id}.json" in store.listing("root/")  # only the run's record
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


def data_objects(store: Store, prefix: str) -> dict[str, tuple[str, str]]:
    """The objects under `prefix` but the run records, which every run adds (see versioning/run_record.py)."""
    return {k: v for k, v in store.listing(prefix).items() if not k.startswith(f"{prefix}.dbnd/runs/")}


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

        # outputs refused: first known when the task writes them
        (project / "file.csv").write_bytes(INPUTS["csv"])
        result = dbnd("--set", "prepare_data.raw_data=file.csv", "--set", "run.data_root=s3://guarded/root")
        assert_one_line_error(result, 1, "task 'prepare_data' failed", "'s3://guarded/root/",
                              "refused the credentials", secrets=(secret, wrong))


def test_azure_wrong_account_key(az_container: str, azurite_server: Server, project: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store("az", az_container, azurite_server, ())
    store.put("in/file.csv", INPUTS["csv"])
    wrong_key = "V3JvbmdLZXk" + servers.AZURITE_KEY[11:]
    wrong = servers.azurite_connection_string(azurite_server.url, key=wrong_key)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    servers.clear_filesystem_caches()
    uri = store.uri("in/file.csv")
    line = assert_one_line_error(dbnd("--set", f"prepare_data.raw_data={uri}"), 2, f"'{uri}'",
                                 "refused the credentials", "AZURE_STORAGE_CONNECTION_STRING",
                                 secrets=(wrong_key, servers.AZURITE_KEY, wrong))
    assert "file's content" not in line


def test_gcs_raw_access_token_is_never_echoed(gcs_bucket: str, gcs_server: Server, project: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # fake-gcs-server accepts any caller: "wrong credentials" on GCS is a token gcsfs cannot use. It asks
    # Google's tokeninfo endpoint about it (here through a proxy port nobody listens on, so nothing leaves
    # the machine), and the failure it raises repeats the token in the URL.
    from prefect.filesystems import RemoteFileSystem

    store = Store("gs", gcs_bucket, gcs_server, ())
    store.put("in/file.csv", INPUTS["csv"])
    name = servers.unique_name("raw-token")
    RemoteFileSystem(basepath=store.uri("root"), settings={"token": RAW_GCS_TOKEN, "endpoint_url": gcs_server.url}
                     ).save(name)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{servers.free_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    uri = store.uri("in/file.csv")
    result = dbnd("--set", f"prepare_data.raw_data={uri}", "--set", f"run.storage_block=remote-file-system/{name}")
    line = assert_one_line_error(result, 2, f"'{uri}'", f"remote-file-system/{name}",
                                 secrets=(RAW_GCS_TOKEN, RAW_GCS_TOKEN.split(".", 1)[1]))
    assert "access_token=***" in line  # the backend's own words are kept, minus the secret


# --- a saved Prefect storage block as the data root ---------------------------------------------------------


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """An OAuth2 token endpoint that grants every request (what Google's does for a valid service account)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "dbnd-e2e-granted", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def google_service_account(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Iterator[None]:
    """GOOGLE_APPLICATION_CREDENTIALS: a service account whose tokens come from a token endpoint on 127.0.0.1.

    prefect-gcp's GcsBucket always authenticates (google.auth.default()); an authorized-user file would
    refresh at oauth2.googleapis.com whatever it says, a service account honours its own token_uri.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        account = folder / "service-account.json"
        account.write_text(json.dumps({
            "type": "service_account", "project_id": servers.GCS_PROJECT, "private_key_id": "dbnd-e2e",
            "private_key": key, "client_email": f"dbnd@{servers.GCS_PROJECT}.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": f"http://127.0.0.1:{server.server_address[1]}/token",
        }))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(account))
        yield
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def save_block(store: Store, folder: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Save the Prefect storage block a user would keep for this store; its slug. Credentials for
    S3 and Azure then live only in the block (removed from the environment)."""
    name = servers.unique_name("e2e")
    if store.protocol == "s3":
        from prefect_aws import AwsCredentials, S3Bucket
        from prefect_aws.client_parameters import AwsClientParameters

        S3Bucket(bucket_name=store.bucket, bucket_folder=folder, credentials=AwsCredentials(
            aws_access_key_id=servers.AWS_ACCESS_KEY_ID, aws_secret_access_key=servers.AWS_SECRET_ACCESS_KEY,
            region_name=servers.AWS_REGION,
            aws_client_parameters=AwsClientParameters(endpoint_url=store.server.url))).save(name)
        for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(var)
        return f"s3-bucket/{name}"
    if store.protocol == "az":
        from prefect_azure import AzureBlobStorageCredentials
        from prefect_azure.blob_storage import AzureBlobStorageContainer

        connection_string = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
        AzureBlobStorageContainer(container_name=store.bucket, base_folder=folder, credentials=(
            AzureBlobStorageCredentials(connection_string=connection_string))).save(name)
        monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
        return f"azure-blob-storage-container/{name}"
    from prefect_gcp import GcpCredentials
    from prefect_gcp.cloud_storage import GcsBucket

    GcsBucket(bucket=store.bucket, bucket_folder=folder,
              gcp_credentials=GcpCredentials(project=servers.GCS_PROJECT)).save(name)
    return f"gcs-bucket/{name}"


def test_storage_block_as_data_root(store: Store, project: Path, monkeypatch: pytest.MonkeyPatch,
                                    local_outputs) -> None:
    store.put("in/file.csv", INPUTS["csv"])
    with contextlib.ExitStack() as stack:
        if store.protocol == "gs":
            stack.enter_context(google_service_account(monkeypatch, project))
        slug = save_block(store, "block-root", monkeypatch)
        servers.clear_filesystem_caches()
        args = ("--set", f"prepare_data.raw_data={store.uri('in/file.csv')}", "--set", f"run.storage_block={slug}")
        first = dbnd(*args)
        assert first.exit_code == 0, first.stderr
        assert first.run.task_runs[0]["state"] == "Completed"
        assert first.run.data_root == store.uri("block-root")
        assert_same_frames(outputs_of(first), local_outputs["csv"])
        written = data_objects(store, "block-root/")
        digest = first.run.task_runs[0]["signature"]
        # outputs through the typed targets, cache records through the block itself, sealed as on any root
        record_key = f"block-root/.dbnd/prefect-records/{digest}"
        assert record_key in written, written
        assert sum(k.endswith(".parquet") for k in written) == 2
        record = store.get(record_key)
        assert record.startswith(b'{"dbnd_record":1,"xxh3_128":"')

        again = dbnd(*args)
        assert again.exit_code == 0, again.stderr
        assert again.run.task_runs[0]["state"] == "Cached"
        assert data_objects(store, "block-root/") == written

        # one byte of the record's metadata edited in place (the serializer's name): not reused, recomputed
        at = record.index(b'"serializer"') + len(b'"serializer"') + 12
        store.put(record_key, record[:at] + bytes([record[at] ^ 0x01]) + record[at + 1:])
        edited = dbnd(*args)
        assert edited.exit_code == 0, edited.stderr
        assert edited.run.task_runs[0]["state"] == "Completed"
        assert store.get(record_key).startswith(b'{"dbnd_record":1,')  # written again, sealed
    assert not any(path.is_file() for path in project.glob("data/**/*"))


# --- a stopped server ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [
    "s3",  # ~8 s of botocore retries
    pytest.param("az", marks=pytest.mark.slow),  # ~85 s: the Azure SDK's retry policy, not settable via adlfs
    pytest.param("gs", marks=pytest.mark.slow),  # ~35 s: gcsfs retries 6 times with backoff, fixed
])
def test_stopped_server_is_one_line_naming_the_uri(protocol: str, project: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    store = servers.stopped_store(protocol, monkeypatch, tmp_path, lambda s: s.put("in/file.csv", INPUTS["csv"]))
    servers.clear_filesystem_caches()
    uri = store.uri("in/file.csv")
    started = time.monotonic()
    result = dbnd("--set", f"prepare_data.raw_data={uri}")
    line = assert_one_line_error(result, 2, f"'{uri}'", "cannot reach the store", secrets=store.secrets)
    assert f"127.0.0.1:{store.server.port}" in line  # which endpoint was tried
    assert time.monotonic() - started < 150  # the store is asked once, not once per step


# --- the real console script ----------------------------------------------------------------------------------


def test_console_script_on_s3(s3_bucket: str, s3_server: Server, project: Path, local_outputs) -> None:
    store = Store("s3", s3_bucket, s3_server, (servers.AWS_SECRET_ACCESS_KEY,))
    store.put("in/file.json", INPUTS["json"])
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dbnd"), "run", "prepare_data",
         "--set", f"prepare_data.raw_data={store.uri('in/file.json')}"],
        cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "  prepare_data: Completed" in proc.stdout.splitlines()
    written = {line.split()[0]: Path(line.split()[1]) for line in proc.stdout.splitlines()
               if line.startswith("    result_")}
    assert_same_frames((pd.read_parquet(written["result_1"]), pd.read_parquet(written["result_2"])),
                       local_outputs["json"])
    assert servers.AWS_SECRET_ACCESS_KEY not in proc.stdout + proc.stderr
