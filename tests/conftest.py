"""Test session set-up: an isolated Prefect home and one real Prefect server on 127.0.0.1.

The server starts before any test module imports Prefect, so that every test, and every
subprocess a test starts, talks to it through PREFECT_API_URL.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers", "tests.postgres"]

REPO = Path(__file__).resolve().parent.parent
_server: subprocess.Popen | None = None
_home: str | None = None


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"prefect server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


# Files whose tests take longest, longest first (from `--durations` of a full run, 2026-12-07): the suite runs
# with `--dist loadfile --no-loadscope-reorder`, so a worker starts each of them early instead of ending on them.
SLOW_FILES = (
    "tests/reliability/test_r1_kill.py", "tests/test_databricks_tasks.py", "tests/test_local_server.py",
    "tests/reliability/test_r9_load.py", "tests/test_bench_smoke.py", "tests/test_deployments.py",
    "tests/test_cloud_e2e.py", "tests/test_deployments_cli.py", "tests/test_docs_deployment_steps.py",
    "tests/test_spark_engines.py", "tests/test_ray_runner.py", "tests/test_kubernetes_worker.py",
    "tests/test_docker_worker.py", "tests/test_entry_points.py", "tests/test_server_postgres.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow files first, then the others by their number of tests (most first), each file's tests in order."""
    files = [item.nodeid.split("::", 1)[0] for item in items]
    counts: dict[str, int] = {}
    for name in files:
        counts[name] = counts.get(name, 0) + 1
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    order = {id(item): (rank.get(name, len(rank)), -counts[name], name, i)
             for i, (item, name) in enumerate(zip(items, files))}
    items.sort(key=lambda item: order[id(item)])


def pytest_configure(config: pytest.Config) -> None:
    global _server, _home
    _home = tempfile.mkdtemp(prefix="dbnd-test-prefect-home-")
    atexit.register(_stop_server)
    os.environ.update(
        PREFECT_HOME=_home,
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
        PREFECT_SERVER_LOGGING_LEVEL="WARNING",
        PREFECT_LOGGING_LEVEL="WARNING",
        DBND_CACHE_DIR=str(Path(_home) / "dbnd-cache"),
    )
    if os.environ.get("DBND_TEST_PREFECT_API_URL"):  # reuse a running server while developing
        os.environ["PREFECT_API_URL"] = os.environ["DBND_TEST_PREFECT_API_URL"]
        return
    from tests.servers import free_port  # imported by pytest as a plugin first, so its asserts are rewritten

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = Path(_home) / "server.log"
    prefect_bin = str(Path(sys.executable).parent / "prefect")
    _server = subprocess.Popen(
        [prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, "PREFECT_UI_ENABLED": "false"},
        start_new_session=True,
    )
    _wait_healthy(url, _server, log)
    os.environ["PREFECT_API_URL"] = url


def _stop_server() -> None:
    """Registered with atexit before Prefect is imported, so it runs after Prefect's own exit handlers
    have flushed their events and logs to the server (stopping it earlier floods the output with
    reconnect errors)."""
    if _server is not None:
        _server.terminate()
        try:
            _server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _server.kill()
    if _home:
        shutil.rmtree(_home, ignore_errors=True)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with its own data root and no project configuration above it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    yield tmp_path
    reset_config_cache()


@pytest.fixture
def raw_csv(workdir: Path) -> Path:
    """`raw.csv` in the working directory, read by the pipeline of tests/counted_chain.py (its counts reset)."""
    import pandas as pd

    from tests.counted_chain import calls

    calls.clear()
    path = workdir / "raw.csv"
    pd.DataFrame({"x": [1, 2, 3, -1]}).to_csv(path, index=False)
    return path


def run_python(*args: str, cwd: Path | str = REPO, timeout: float = 180, env: dict | None = None
               ) -> subprocess.CompletedProcess:
    """Run this interpreter in a subprocess, as a user would run a script."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=full_env)
