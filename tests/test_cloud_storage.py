"""Cloud storage as a user meets it: data targets on S3 (moto), Azure Blob (Azurite) and GCS (fake-gcs-server),
with credentials from the environment (`register_cloud_options`) or from saved Prefect blocks.

Every server is real and listens on 127.0.0.1 (fixtures in tests/servers.py).
"""

from __future__ import annotations

import io
import json
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect.targets.credentials import CLOUD_PROTOCOLS, register_cloud_options, storage_options_from_env
from dbnd_prefect.runtime.storage_blocks import load_block_storage
from dbnd_prefect.redaction import redact
from dbnd_prefect.errors import TargetError
from dbnd_prefect.targets import Target, clear_filesystem_cache, register_storage_options
from tests import servers
from tests.servers import Server, Store

FRAME = pd.DataFrame({"id": [1, 2, 3], "name": ["ada", "grace", "linus"], "score": [0.5, 1.25, -3.0]})


def gcs_object(server: Server, bucket: str, key: str) -> dict:
    url = f"{server.url}/storage/v1/b/{bucket}/o/{urllib.parse.quote(key, safe='')}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def gcs_download(server: Server, bucket: str, key: str) -> bytes:
    url = f"{server.url}/download/storage/v1/b/{bucket}/o/{urllib.parse.quote(key, safe='')}?alt=media"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def assert_clean_error(exc: TargetError, uri: str, secrets: tuple[str, ...]) -> None:
    """The message names the URI and carries no credential text."""
    message = str(exc)
    assert uri in message, message
    for secret in secrets:
        assert secret not in message, f"credential leaked into: {message}"


@pytest.fixture
def env_options() -> Iterator[None]:
    """Cloud options from the environment, as the CLI registers them; the registry is emptied afterwards."""
    register_cloud_options()
    yield
    for protocol in CLOUD_PROTOCOLS:
        register_storage_options(protocol, {})
    clear_filesystem_cache()


@pytest.fixture(params=["s3", "az", "gs"])
def store(request: pytest.FixtureRequest, env_options: None) -> Store:
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        server = request.getfixturevalue("s3_server")
        return Store("s3", bucket, server, (servers.AWS_SECRET_ACCESS_KEY,))
    if request.param == "az":
        bucket = request.getfixturevalue("az_container")
        server = request.getfixturevalue("azurite_server")
        return Store("az", bucket, server, (servers.AZURITE_KEY, os.environ["AZURE_STORAGE_CONNECTION_STRING"]))
    bucket = request.getfixturevalue("gcs_bucket")
    return Store("gs", bucket, request.getfixturevalue("gcs_server"), ())


# --- data round trips -------------------------------------------------------------------------------------


def test_dataframe_round_trips_as_parquet_and_csv(store: Store) -> None:
    for key in ("frames/scores.parquet", "frames/scores.csv"):
        target = Target(store.uri(key))
        target.save(FRAME)
        assert Target(store.uri(key)).exists()
        pd.testing.assert_frame_equal(Target(store.uri(key)).load(pd.DataFrame), FRAME)


def test_dict_round_trips_as_json(store: Store) -> None:
    payload = {"model": "gbm", "params": {"depth": 3, "rate": 0.1}, "tags": ["a", "b"]}
    Target(store.uri("meta/run.json")).save(payload)
    assert Target(store.uri("meta/run.json")).load(dict) == payload


def test_object_larger_than_8_mib_round_trips(store: Store) -> None:
    array = np.random.default_rng(7).random(9 * 2**20 // 8 + 1024)  # 9 MiB of incompressible floats
    target = Target(store.uri("big/values.npy"))
    target.save(array)
    assert target.info()["size"] > 8 * 2**20
    np.testing.assert_array_equal(Target(store.uri("big/values.npy")).load(), array)


def test_fingerprint_is_the_stores_version_and_changes_on_overwrite(store: Store) -> None:
    key = "versioned/data.parquet"
    target = Target(store.uri(key))
    target.save(FRAME)
    first = store.version(key)
    info = target.info()
    assert info[{"s3": "etag", "az": "etag", "gs": "generation"}[store.protocol]] == first
    assert first in target.fingerprint()

    target.save(FRAME.assign(score=FRAME.score * 2))
    second = store.version(key)
    assert second != first
    assert second in target.fingerprint()
    assert first not in target.fingerprint()


# --- errors a user can act on -----------------------------------------------------------------------------


def test_missing_object_is_a_target_error_naming_the_uri(store: Store) -> None:
    uri = store.uri("nowhere/missing.parquet")
    assert not Target(uri).exists()
    with pytest.raises(TargetError) as load_error:
        Target(uri).load(pd.DataFrame)
    assert_clean_error(load_error.value, uri, store.secrets)
    with pytest.raises(TargetError) as info_error:
        Target(uri).info()
    assert_clean_error(info_error.value, uri, store.secrets)


def test_missing_bucket_is_a_target_error_naming_the_uri(store: Store) -> None:
    uri = f"{store.protocol}://no-such-bucket-{uuid.uuid4().hex[:8]}/data.parquet"
    with pytest.raises(TargetError) as load_error:
        Target(uri).load(pd.DataFrame)
    assert_clean_error(load_error.value, uri, store.secrets)
    with pytest.raises(TargetError) as info_error:
        Target(uri).info()
    assert_clean_error(info_error.value, uri, store.secrets)


def test_s3_wrong_secret_is_a_clean_target_error(env_options: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with servers.moto_s3_with_auth() as (server, key_id, secret):
        servers.set_s3_env(monkeypatch, server.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        import boto3

        boto3.session.Session().client("s3", endpoint_url=server.url).create_bucket(Bucket="guarded")
        uri = "s3://guarded/data.parquet"
        Target(uri).save(FRAME)  # the right key works

        wrong = "Wr0ngSecretKey/" + secret[15:]
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
        clear_filesystem_cache()
        for action in (lambda: Target(uri).load(pd.DataFrame), lambda: Target(uri).save(FRAME)):
            with pytest.raises(TargetError) as error:
                action()
            assert_clean_error(error.value, uri, (secret, wrong))


def test_azure_wrong_account_key_is_a_clean_target_error(
    az_container: str, azurite_server: Server, env_options: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"az://{az_container}/data.parquet"
    Target(uri).save(FRAME)
    wrong_key = "V3JvbmdLZXk" + servers.AZURITE_KEY[11:]
    wrong = servers.azurite_connection_string(azurite_server.url, key=wrong_key)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    clear_filesystem_cache()
    for action in (lambda: Target(uri).load(pd.DataFrame), lambda: Target(uri).save(FRAME)):
        with pytest.raises(TargetError) as error:
            action()
        assert_clean_error(error.value, uri, (wrong_key, servers.AZURITE_KEY, wrong))


def test_gcs_broken_service_account_is_a_clean_target_error(gcs_bucket: str, gcs_server: Server) -> None:
    # fake-gcs-server accepts any caller, so "wrong credentials" here is a key that cannot be used at all
    key_body = "Tm90QVJlYWxLZXlCdXRTZWNyZXRBbGxUaGVTYW1l"
    private_key = f"-----BEGIN PRIVATE KEY-----\n{key_body}\n-----END PRIVATE KEY-----\n"
    token = {
        "type": "service_account", "project_id": servers.GCS_PROJECT, "private_key_id": "0123456789abcdef",
        "private_key": private_key, "client_email": "dbnd@dbnd-test-project.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "http://127.0.0.1:9/token",
    }
    register_storage_options("gs", {"endpoint_url": gcs_server.url, "token": token})
    try:
        uri = f"gs://{gcs_bucket}/data.parquet"
        with pytest.raises(TargetError) as error:
            Target(uri).save(FRAME)
        assert_clean_error(error.value, uri, (key_body,))
    finally:
        register_storage_options("gs", {})


# az and gs spend ~2 minutes in client retries before failing; tests/test_cloud_e2e.py covers them end to end.
@pytest.mark.parametrize("protocol", ["s3"])  # ~7 s of botocore retries
def test_stopped_server_is_a_target_error_naming_the_uri(
    protocol: str, env_options: None, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    store = servers.stopped_store(protocol, monkeypatch, tmp_path,
                                  lambda s: Target(s.uri("data.parquet")).save(FRAME))
    uri = store.uri("data.parquet")
    with pytest.raises(TargetError) as error:
        Target(uri).load(pd.DataFrame)
    assert_clean_error(error.value, uri, store.secrets)


# --- environment -> options -------------------------------------------------------------------------------


def test_env_options_follow_environment_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST",
                 "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    assert storage_options_from_env("s3") == {}
    assert storage_options_from_env("gs") == {}
    assert storage_options_from_env("abfs") == {}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:2")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true")
    assert storage_options_from_env("s3a") == {"endpoint_url": "http://127.0.0.1:1"}
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:3")  # the S3-specific one wins, as in botocore
    assert storage_options_from_env("s3") == {"endpoint_url": "http://127.0.0.1:3"}
    assert storage_options_from_env("gcs") == {"endpoint_url": "http://127.0.0.1:2", "token": "anon"}
    assert storage_options_from_env("az") == {"connection_string": "UseDevelopmentStorage=true"}


def test_env_change_takes_effect_after_clearing_the_cache(
    s3_bucket: str, s3_server: Server, env_options: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"s3://{s3_bucket}/switch.json"
    Target(uri).save({"on": "first server"})
    with servers.moto_s3() as other:  # moto shares its state per process: a second endpoint, same buckets
        monkeypatch.setenv("AWS_ENDPOINT_URL", other.url)
        clear_filesystem_cache()
        assert Target(uri).fs.endpoint_url == other.url
        assert Target(uri).load(dict) == {"on": "first server"}


# --- Prefect blocks ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A Prefect API for saving blocks: the suite's server when there is one, else a temporary one."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


def test_s3_bucket_block_with_aws_credentials(
    s3_bucket: str, s3_server: Server, prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    name = servers.unique_name("s3")
    S3Bucket(
        bucket_name=s3_bucket, bucket_folder="from-block",
        credentials=AwsCredentials(
            aws_access_key_id=servers.AWS_ACCESS_KEY_ID, aws_secret_access_key=servers.AWS_SECRET_ACCESS_KEY,
            region_name=servers.AWS_REGION, aws_client_parameters=AwsClientParameters(endpoint_url=s3_server.url),
        ),
    ).save(name)
    # only the block knows where and who: nothing in the environment
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var)

    protocol, base, options = load_block_storage(f"s3-bucket/{name}")
    assert (protocol, base) == ("s3", f"s3://{s3_bucket}/from-block")
    register_storage_options("s3", options)
    try:
        Target(f"{base}/frame.parquet").save(FRAME)
        block = S3Bucket.load(name)
        assert block.read_path("frame.parquet") == Target(f"{base}/frame.parquet").fs.cat(
            f"{s3_bucket}/from-block/frame.parquet")
        block.write_path("written-by-prefect.json", b'{"by": "prefect"}')
        assert Target(f"{base}/written-by-prefect.json").load(dict) == {"by": "prefect"}
        pd.testing.assert_frame_equal(Target(f"{base}/frame.parquet").load(pd.DataFrame), FRAME)
    finally:
        register_storage_options("s3", {})


def test_azure_container_block_with_connection_string(
    az_container: str, prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_azure import AzureBlobStorageCredentials
    from prefect_azure.blob_storage import AzureBlobStorageContainer

    conn = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    name = servers.unique_name("az")
    AzureBlobStorageContainer(
        container_name=az_container, base_folder="from-block",
        credentials=AzureBlobStorageCredentials(connection_string=conn),
    ).save(name)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")

    protocol, base, options = load_block_storage(f"azure-blob-storage-container/{name}")
    assert (protocol, base) == ("az", f"az://{az_container}/from-block")
    assert redact(f"failed with {options}").count(servers.AZURITE_KEY) == 0
    register_storage_options("az", options)
    try:
        Target(f"{base}/frame.csv").save(FRAME)
        block = AzureBlobStorageContainer.load(name)
        pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(block.read_path("frame.csv"))), FRAME)
        block.write_path("written-by-prefect.json", b'{"by": "prefect"}')
        assert Target(f"{base}/written-by-prefect.json").load(dict) == {"by": "prefect"}
    finally:
        register_storage_options("az", {})


def test_gcs_bucket_block_with_gcp_credentials(
    gcs_bucket: str, gcs_server: Server, prefect_api: None
) -> None:
    from prefect_gcp import GcpCredentials
    from prefect_gcp.cloud_storage import GcsBucket

    name = servers.unique_name("gs")
    GcsBucket(
        bucket=gcs_bucket, bucket_folder="from-block", gcp_credentials=GcpCredentials(project=servers.GCS_PROJECT),
    ).save(name)

    protocol, base, options = load_block_storage(f"gcs-bucket/{name}")
    assert (protocol, base) == ("gs", f"gs://{gcs_bucket}/from-block")
    assert options["project"] == servers.GCS_PROJECT
    register_storage_options("gs", options)
    try:
        Target(f"{base}/frame.parquet").save(FRAME)
        stored = gcs_download(gcs_server, gcs_bucket, "from-block/frame.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(stored)), FRAME)
    finally:
        register_storage_options("gs", {})


def test_local_file_system_block(tmp_path, prefect_api: None) -> None:
    from prefect.filesystems import LocalFileSystem

    name = servers.unique_name("local")
    LocalFileSystem(basepath=str(tmp_path / "store")).save(name)
    protocol, base, options = load_block_storage(f"local-file-system/{name}")
    assert (protocol, base, options) == ("file", str(tmp_path / "store"), {})
    Target(f"{base}/frame.parquet").save(FRAME)
    assert LocalFileSystem.load(name).read_path("frame.parquet") == (tmp_path / "store" / "frame.parquet").read_bytes()


def test_unknown_block_slug_is_a_config_error(prefect_api: None) -> None:
    from dbnd_prefect.errors import ConfigError

    with pytest.raises(ConfigError, match="s3-bucket/no-such-block"):
        load_block_storage("s3-bucket/no-such-block")
    with pytest.raises(ConfigError, match="BLOCK-TYPE/NAME"):
        load_block_storage("just-a-name")

