"""The local Prefect server on Postgres (`[server] database_url`): a run, then a restart that keeps the history.

The Postgres is real (tests/postgres.py); R9's 50 concurrent runs also run on it (tests/reliability/test_r9_load.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.postgres import PASSWORD

from tests.test_local_server import CHAIN, DBND  # the same project and command



@pytest.fixture
def pg_project(tmp_path: Path, postgres: dict) -> Iterator[tuple[Path, Path, dict]]:
    folder, home = tmp_path / "project", tmp_path / "prefect-home"
    folder.mkdir()
    (folder / "chain.py").write_text(CHAIN)
    (folder / "dbnd.toml").write_text(f'[run]\ndata_root = "data"\n\n[server]\ndatabase_url = "{postgres["url"]}"\n')
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home))
    yield folder, home, env
    subprocess.run([DBND, "server", "stop"], cwd=folder, env=env, capture_output=True, timeout=120)
    state = home / "dbnd-server.json"
    if state.exists():  # a failed stop must not leave a server behind
        with contextlib.suppress(ProcessLookupError, ValueError, KeyError):
            os.kill(json.loads(state.read_text())["pid"], 9)


def _flow_runs(api_url: str) -> list[dict]:
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


@pytest.mark.slow
def test_a_server_on_postgres_keeps_its_history_across_a_restart(pg_project, postgres):
    folder, home, env = pg_project

    def dbnd(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([DBND, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert PASSWORD not in done.stdout + done.stderr
        return done

    started = dbnd("server", "start")
    assert started.returncode == 0, started.stderr
    assert "database: postgresql+asyncpg://dbnd:***@127.0.0.1:" in started.stdout
    url = json.loads((home / "dbnd-server.json").read_text())["url"]

    ran = dbnd("run", "chain.py:chain")
    assert ran.returncode == 0, ran.stderr
    run_ids = {run["id"] for run in _flow_runs(url) if run["state_type"] == "COMPLETED"}
    assert len(run_ids) == 1
    assert postgres["sql"]("select count(*) from flow_run where state_type = 'COMPLETED'") == "1"  # in Postgres
    assert not (home / "prefect.db").exists()  # not in Prefect's SQLite

    assert dbnd("server", "stop").returncode == 0
    assert not (home / "dbnd-server.json").exists()
    again = dbnd("server", "start")
    assert again.returncode == 0, again.stderr
    url = json.loads((home / "dbnd-server.json").read_text())["url"]
    assert {run["id"] for run in _flow_runs(url)} >= run_ids  # the history survived the restart

    status = dbnd("server", "status")
    assert status.stdout.startswith("running") and "database: postgresql+asyncpg://dbnd:***@" in status.stdout
    recorded = (home / "dbnd-server.json").read_text() + (home / "dbnd-server.log").read_text()
    assert PASSWORD not in recorded

    # the configuration no longer names Postgres: the running server is kept, and says what to do to switch
    (folder / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    noted = dbnd("server", "status")
    assert ("uses postgresql+asyncpg://dbnd:***@127.0.0.1:" in noted.stdout
            and "but [server] database_url is now unset (SQLite): `dbnd server stop` then `dbnd server start` to "
                "switch" in noted.stdout), noted.stdout
    again_run = dbnd("run", "chain.py:chain")
    assert again_run.returncode == 0, again_run.stderr
    assert "`dbnd server stop` then `dbnd server start` to switch" in again_run.stderr
    assert json.loads((home / "dbnd-server.json").read_text())["url"] == url  # the same server
