"""The Databricks Connect engine (`tasks = "connect"`), run for real from a venv of its own.

databricks-connect brings its own pyspark, so it lives in `.venv-dbconnect` (Python 3.12, made by
scripts/install-dbconnect.sh, which the test command runs). Databricks Connect speaks the Spark Connect
protocol: its session is opened here by the address the engine builds from the credentials block
(`sc://INSTANCE/;token=...;x-databricks-cluster-id=...`), pointed at a real Spark Connect server from the
main venv's pyspark standing in for the cluster. What this does not reach: a real workspace's TLS and
OAuth, which need Databricks itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import uuid
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.servers import free_port

pytest.importorskip("prefect_databricks", reason="pip install prefect-databricks")

pytestmark = [pytest.mark.slow]

DBC_VENV = REPO / ".venv-dbconnect"
TOKEN = "dapi-connect-" + uuid.uuid4().hex

STEPS = '''
import pandas as pd
from pyspark.sql import DataFrame as SparkFrame, functions as F

from dbnd_prefect import pipeline, task
from dbnd_prefect.spark import spark_session


@task
def dbc_clean(raw: SparkFrame) -> SparkFrame:
    return raw.where(F.col("amount") > 0).withColumn("amount", F.col("amount").cast("double"))


@task
def dbc_totals(sales: SparkFrame) -> SparkFrame:
    return sales.groupBy("region").agg(F.sum("amount").alias("total"), F.count(F.lit(1)).alias("orders"))


@task
def dbc_report(totals: pd.DataFrame) -> pd.DataFrame:
    return totals.sort_values("region").reset_index(drop=True)


@pipeline
def dbc_sales(raw: str = "sales.csv"):
    return dbc_report(dbc_totals(dbc_clean(raw)))


@task
def dbc_session() -> str:
    import pyspark

    spark = spark_session()
    return f"{type(spark).__module__} client {pyspark.__version__} server {spark.version}"
'''

SALES = pd.DataFrame({"region": ["eu", "us", "eu", "apac", "us", "eu"], "amount": [10, 20, -5, 7, 3, 1]})


def wait_for_install() -> str:
    """When the test command installs .venv-dbconnect beside the suite (DBND_TEST_DBCONNECT_INSTALL=PID:LOG), wait
    for that install to end; the end of its log."""
    pid, _, log = os.environ.get("DBND_TEST_DBCONNECT_INSTALL", "").partition(":")
    if not pid:
        return ""
    deadline = time.monotonic() + 900
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(1)
    return Path(log).read_text()[-2000:] if Path(log).exists() else ""


@pytest.fixture(scope="module")
def dbconnect_python() -> Path:
    installing = wait_for_install()
    python = DBC_VENV / "bin" / "python"
    if not python.exists() or not (DBC_VENV / ".dbnd-installed").exists():
        message = f"no {DBC_VENV}: run bash scripts/install-dbconnect.sh\n{installing}"
        if os.environ.get("DBND_TEST_REQUIRE_ENGINES"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return python


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[int]:
    """A Spark Connect server on a free 127.0.0.1 port: the cluster Databricks Connect talks to."""
    from dbnd_prefect.spark.connect_server import start_connect_server, stop_connect_server, wait_until_serving

    port = free_port()
    log = (tmp_path_factory.mktemp("connect") / "server.log").open("w")
    process = start_connect_server(port, conf={"spark.sql.shuffle.partitions": "2"}, log=log)
    try:
        wait_until_serving(process, port)
        yield port
    finally:
        stop_connect_server(process)
        log.close()


@pytest.fixture
def project(tmp_path: Path, cluster: int, dbconnect_python: Path) -> Path:
    from prefect_databricks import DatabricksCredentials

    block = f"connect-{uuid.uuid4().hex[:12]}"
    DatabricksCredentials(databricks_instance=f"localhost:{cluster}", token=TOKEN).save(block)
    (tmp_path / "dbc_steps.py").write_text(STEPS)
    SALES.to_csv(tmp_path / "sales.csv", index=False)
    (tmp_path / "dbnd.toml").write_text(textwrap.dedent(f'''
        [run]
        data_root = "data"
        modules = ["dbc_steps"]

        [env.dbc.spark]
        engine = "databricks"
        tasks = "connect"
        credentials_block = "{block}"
        cluster_id = "0923-164208-local"
        '''))
    return tmp_path


def dbnd(python: Path, project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(project)
    return subprocess.run([str(python.parent / "dbnd"), *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_spark_pipeline_runs_through_databricks_connect(project, dbconnect_python):
    proc = dbnd(dbconnect_python, project, "run", "dbc_sales", "--env", "dbc")
    assert proc.returncode == 0, proc.stderr
    for noise in ("ERROR", "Traceback"):
        assert noise not in proc.stderr, proc.stderr
    report = next(project.glob("data/dbc/*/dbc_report/dbc_report_*/result.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(report), pd.DataFrame(
        {"region": ["apac", "eu", "us"], "total": [7.0, 11.0, 23.0], "orders": [1, 2, 2]}), check_dtype=False)
    totals = next(project.glob("data/dbc/*/dbc_totals/dbc_totals_*/result.parquet"))
    assert (totals / "_SUCCESS").exists()  # written by the Connect server, the cluster's stand-in
    manifests = [path.read_text() for path in project.glob("data/dbc/**/_manifest.json")]
    assert len(manifests) == 3 and all(TOKEN not in text for text in manifests)
    assert TOKEN not in proc.stdout + proc.stderr


def test_the_session_is_databricks_connects_own_client_against_the_cluster(project, dbconnect_python):
    proc = dbnd(dbconnect_python, project, "run", "dbc_session", "--env", "dbc")
    assert proc.returncode == 0, proc.stderr
    (stored,) = project.glob("data/dbc/*/dbc_session/dbc_session_*/result.*")
    found = json.loads(stored.read_text()) if stored.suffix == ".json" else stored.read_text().strip()
    import pyspark

    assert found.startswith("pyspark.sql.connect.session client ") and found.endswith(f"server {pyspark.__version__}")
    assert f"client {pyspark.__version__} " not in found  # databricks-connect's own pyspark, not the main venv's


def test_a_cluster_that_does_not_answer_is_one_line_without_the_token(project, dbconnect_python):
    toml = project / "dbnd.toml"
    from prefect_databricks import DatabricksCredentials

    block = f"connect-down-{uuid.uuid4().hex[:8]}"
    DatabricksCredentials(databricks_instance=f"localhost:{free_port()}", token=TOKEN).save(block)
    toml.write_text(toml.read_text().replace('credentials_block = "', f'credentials_block = "{block}" # "'))
    proc = dbnd(dbconnect_python, project, "run", "dbc_sales", "--env", "dbc")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Spark engine 'databricks'" in lines[0], proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
