"""A real Postgres for the local server's `[server] database_url` tests (Debian's `postgresql` package:
`apt-get install -y postgresql`, which scripts/install-postgres.sh does): started in a temporary folder on a free
127.0.0.1 port with password authentication, stopped afterwards."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import free_port

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
