"""The local Prefect server on Postgres (`[server] database_url`): a run, then a restart that keeps the history.

A real Postgres (Debian's `postgresql` package: `apt-get install -y postgresql`) is started by the fixture in
a temporary folder on a free 127.0.0.1 port, with password authentication, and stopped afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import free_port

from tests.test_local_server import CHAIN, DBND  # the same project and command

PASSWORD = "pg-Secret-4-dbnd-test"  # must never appear in what dbnd prints or records
USER = "dbnd"
DATABASE = "prefect"


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    assert found, "Postgres is not installed: apt-get install -y postgresql"
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict]:
    """A Postgres server on 127.0.0.1:PORT with user `dbnd` (password PASSWORD) and a database `prefect`."""
    bin_dir = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="dbnd-test-postgres-"))  # not under pytest's root-only tmp folder
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    (folder / "pw").write_text(PASSWORD)
    if as_user:
        os.chown(folder / "pw", owner.pw_uid, owner.pw_gid)
    port, data = free_port(), folder / "data"

    def pg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PGPASSWORD": PASSWORD})

    done = pg(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
              f"--pwfile={folder / 'pw'}", "-E", "UTF8", "--no-sync")
    assert done.returncode == 0, done.stderr
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    done = pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "-t", "60",
              "start")
    try:
        assert done.returncode == 0, (done.stderr, (folder / "log").read_text()[-2000:])
        done = pg(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE)
        assert done.returncode == 0, done.stderr

        def sql(query: str) -> str:
            out = pg(str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, "-d", DATABASE,
                     "-tAc", query)
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        yield {"url": f"postgresql+asyncpg://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}", "sql": sql}
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


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
