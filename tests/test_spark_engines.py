"""Spark tasks on real engines: local Spark (Java 17) in this process and a real Spark Connect server.

One module, so one local Spark session and one Connect server for all of it (the suite gives a file to one
worker): the server is started first, in the background, while the local session starts. Both are stopped
at the end. Local Spark has no object-store connector: an S3 data root (moto) goes through this machine's
disk (staged outputs uploaded `_SUCCESS` last, inputs downloaded); every other target here is a local path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.servers import free_port

# pytest resets warning filters per test; outside pytest the library silences this pyspark warning itself
# (the subprocess test checks that a real process shows none)
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]

DBND = Path(sys.executable).parent / "dbnd"

STEPS = '''
from typing import Annotated

import pandas as pd
from pyspark.sql import DataFrame as SparkFrame, functions as F

from dbnd_prefect import Data, log_dataframe, pipeline, task


@task
def sp_clean(raw: SparkFrame) -> SparkFrame:
    return raw.where(F.col("amount") > 0).withColumn("amount", F.col("amount").cast("double"))


@task
def sp_totals(sales: SparkFrame) -> SparkFrame:
    log_dataframe("sales", sales)
    return sales.groupBy("region").agg(F.sum("amount").alias("total"), F.count(F.lit(1)).alias("orders"))


@task
def sp_report(totals: pd.DataFrame) -> pd.DataFrame:
    return totals.sort_values("region").reset_index(drop=True)


@pipeline
def sp_sales_pipeline(raw: str = "sales.csv"):
    return sp_report(sp_totals(sp_clean(raw)))


@task
def sp_count_rows(data: SparkFrame) -> int:
    return data.count()


@task
def sp_as_csv(data: SparkFrame) -> Annotated[SparkFrame, Data(format="csv.gz")]:
    return data


@task
def sp_explode(data: SparkFrame) -> SparkFrame:
    return data.select(F.raise_error(F.lit("the amounts do not add up")).alias("never"))


@pipeline
def sp_exploding(raw: str = "sales.csv"):
    return sp_explode(sp_clean(raw))
'''

SALES = pd.DataFrame({
    "region": ["eu", "us", "eu", "apac", "us", "eu"],
    "amount": [10, 20, -5, 7, 3, 1],
})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spark-project")
    (root / "spark_steps.py").write_text(STEPS)
    SALES.to_csv(root / "sales.csv", index=False)
    return root


@pytest.fixture(scope="module")
def connect_port(project: Path):
    """A real Spark Connect server (from the pyspark package) on a free 127.0.0.1 port, stopped after the module."""
    from dbnd_prefect.spark.connect_server import start_connect_server, stop_connect_server

    port = free_port()
    log = (project / "connect-server.log").open("w")
    process = start_connect_server(port, conf={"spark.sql.shuffle.partitions": "2"}, log=log)
    try:
        yield port, process
    finally:
        stop_connect_server(process)
        log.close()


@pytest.fixture(scope="module")
def configured(project: Path, connect_port) -> Path:
    port, _ = connect_port
    (project / "dbnd.toml").write_text(textwrap.dedent(f'''
        [run]
        data_root = "data"
        modules = ["spark_steps"]

        [env.spark_local.spark]
        engine = "local"
        cores = 1
        conf = {{ "spark.sql.shuffle.partitions" = "2" }}

        [env.spark_connect.spark]
        engine = "connect"
        remote = "sc://127.0.0.1:{port}"

        [env.tiny_pandas.spark]
        engine = "local"
        to_pandas_max_rows = 2

        [env.spark_down.spark]
        engine = "connect"
        remote = "sc://127.0.0.1:{free_port()}"
        '''))
    return project


@pytest.fixture(scope="module")
def steps(configured: Path):
    """The tasks module, imported from the project (one local Spark session for the module, stopped after)."""
    sys.path.insert(0, str(configured))
    cwd = os.getcwd()
    os.chdir(configured)
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    import spark_steps

    try:
        yield spark_steps
    finally:
        from dbnd_prefect.spark.engine import stop_sessions

        stop_sessions()
        os.chdir(cwd)
        sys.path.remove(str(configured))
        sys.modules.pop("spark_steps", None)
        reset_config_cache()


@pytest.fixture
def in_project(steps, configured: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(configured)
    return steps


@pytest.fixture(scope="module")
def local_session(steps):
    from dbnd_prefect.spark import spark_session
    from dbnd_prefect.config import config_context

    with config_context({"run": {"env": "spark_local"}}):
        return spark_session()


@pytest.fixture(scope="module")
def connect_session(steps, connect_port):
    from dbnd_prefect.config import config_context
    from dbnd_prefect.spark import spark_session
    from dbnd_prefect.spark.connect_server import wait_until_serving

    port, process = connect_port
    wait_until_serving(process, port)
    with config_context({"run": {"env": "spark_connect"}}):
        return spark_session()


def states(result) -> dict[str, str]:
    return {entry["task"]: entry["state"] for entry in result.run.task_runs}


def job_ids(session) -> set[int]:
    tracker = session.sparkContext.statusTracker()
    return set(tracker.getJobIdsForGroup(None))


def dbnd(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]), **(env or {})}
    return subprocess.run([str(DBND), *args], cwd=project, env=full, capture_output=True, text=True, timeout=240)


def spark_folder_frame(folder: Path) -> pd.DataFrame:
    """A Spark output folder read with pandas alone (the files are plain parquet)."""
    assert (folder / "_SUCCESS").exists()
    return pd.read_parquet(folder).sort_values("region").reset_index(drop=True)


# --- local Spark -----------------------------------------------------------------------------------------


def test_local_pipeline_writes_spark_folders_and_a_rerun_runs_no_spark_job(in_project, local_session, configured):
    from dbnd_prefect import run

    first = run(in_project.sp_sales_pipeline, env="spark_local")
    assert set(states(first).values()) == {"Completed"}
    expected = pd.DataFrame({"region": ["apac", "eu", "us"], "total": [7.0, 11.0, 23.0], "orders": [1, 2, 2]})
    pd.testing.assert_frame_equal(first.values, expected, check_dtype=False)

    stored = Path(first.task_outputs["sp_totals"]["result"])
    assert stored.name == "result.parquet" and stored.is_dir()
    assert sorted(p.name for p in stored.iterdir() if not p.name.startswith((".", "_")))[0].startswith("part-")
    pd.testing.assert_frame_equal(spark_folder_frame(stored), expected, check_dtype=False)
    assert not [p for p in stored.parent.iterdir() if p.name.endswith(".tmp")]  # staging folders renamed away
    manifest = json.loads((stored.parent / "_manifest.json").read_text())
    assert manifest["outputs"]["result"]["schema"] == {"region": "string", "total": "double", "orders": "bigint"}
    logged = manifest["tracking"]["logged_profiles"]["sales"]  # log_dataframe inside the task, computed in Spark
    assert logged["engine"] == "spark" and logged["rows"] == 5 and logged["columns"]["amount"]["min"] == 1.0
    automatic = manifest["tracking"]["profiles"]["inputs"]["sales"]
    assert automatic["rows"] is None and automatic["schema"]["amount"] == "double"  # schema only: no Spark job

    before = job_ids(local_session)
    second = run(in_project.sp_sales_pipeline, env="spark_local")
    assert set(states(second).values()) == {"Cached"}
    pd.testing.assert_frame_equal(second.values, expected, check_dtype=False)
    assert job_ids(local_session) == before  # reuse ran no Spark job


def test_local_spark_on_an_s3_root_uploads_committed_folders_and_reads_them_back(in_project, local_session,
                                                                                   configured, s3_bucket):
    import s3fs

    from dbnd_prefect import run

    root = f"s3://{s3_bucket}/spark"
    first = run(in_project.sp_sales_pipeline, env="spark_local", set={"run.data_root": root})
    assert set(states(first).values()) == {"Completed"}
    expected = pd.DataFrame({"region": ["apac", "eu", "us"], "total": [7.0, 11.0, 23.0], "orders": [1, 2, 2]})
    pd.testing.assert_frame_equal(first.values, expected, check_dtype=False)
    stored = first.task_outputs["sp_totals"]["result"]
    assert stored.startswith(f"{root}/") and stored.endswith("result.parquet/")  # a folder on an object store
    fs = s3fs.S3FileSystem()
    base = stored.removeprefix("s3://").rstrip("/")
    names = sorted(p.rsplit("/", 1)[1] for p in fs.find(base))
    assert {"_SUCCESS", "_schema.json"} <= set(names) and any(n.startswith("part-") for n in names)
    assert not [n for n in names if n.endswith(".crc")]
    with fs.open(f"{base}/{next(n for n in names if n.startswith('part-'))}") as f:
        uploaded = pd.read_parquet(f)  # plain parquet parts, readable without Spark
    assert sorted(uploaded["region"]) == ["apac", "eu", "us"]

    second = run(in_project.sp_sales_pipeline, env="spark_local", set={"run.data_root": root})
    assert set(states(second).values()) == {"Cached"}, states(second)

    # a stored Spark folder on S3 as the input of another task: downloaded and read by local Spark
    counted = run(in_project.sp_count_rows, env="spark_local", set={"run.data_root": root, "data": stored})
    assert counted.values == 3


def test_spark_frame_argument_is_fingerprinted_by_plan_and_reused(in_project, local_session, configured):
    from dbnd_prefect import run
    from dbnd_prefect.fingerprint import fingerprint_value

    source = str(configured / "sales.csv")
    frame = local_session.read.option("header", True).option("inferSchema", True).csv(source)
    again = local_session.read.option("header", True).option("inferSchema", True).csv(source)
    assert fingerprint_value(frame.where("amount > 0")) == fingerprint_value(again.where("amount > 0"))
    assert fingerprint_value(frame.where("amount > 0")) != fingerprint_value(frame.where("amount > 1"))

    first = run(in_project.sp_count_rows, set={"sp_count_rows.data": frame.where("amount > 0")}, env="spark_local")
    assert first.values == 5 and set(states(first).values()) == {"Completed"}
    second = run(in_project.sp_count_rows, set={"sp_count_rows.data": again.where("amount > 0")}, env="spark_local")
    assert second.values == 5 and set(states(second).values()) == {"Cached"}

    rows = local_session.createDataFrame([("eu", 1), ("us", 2)], "region string, amount int")
    other = local_session.createDataFrame([("eu", 1), ("us", 3)], "region string, amount int")
    assert fingerprint_value(rows) != fingerprint_value(other)  # rows only Spark holds: digested in Spark


def test_input_fingerprint_follows_the_files(in_project, local_session, configured, tmp_path):
    from dbnd_prefect.fingerprint import fingerprint_value

    folder = tmp_path / "sales.parquet"
    local_session.createDataFrame(SALES).write.parquet(str(folder))
    query = local_session.read.parquet(str(folder)).groupBy("region").count()
    before = fingerprint_value(query)
    assert fingerprint_value(local_session.read.parquet(str(folder)).groupBy("region").count()) == before
    local_session.createDataFrame(SALES.head(3)).write.mode("overwrite").parquet(str(folder))
    assert fingerprint_value(local_session.read.parquet(str(folder)).groupBy("region").count()) != before


def test_compressed_csv_output_and_unfinished_folder_refused(in_project, local_session, configured):
    from dbnd_prefect import run
    from dbnd_prefect.errors import DbndError, is_input_error

    result = run(in_project.sp_as_csv, set={"sp_as_csv.data": str(configured / "sales.csv")}, env="spark_local")
    folder = Path(result.task_outputs["sp_as_csv"]["result"])
    assert folder.name == "result.csv.gz" and (folder / "_SUCCESS").exists()
    parts = [p for p in folder.iterdir() if p.name.startswith("part-")]
    assert parts and all(p.name.endswith(".csv.gz") for p in parts)
    back = pd.concat(pd.read_csv(p) for p in parts).sort_values(["region", "amount"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, SALES.sort_values(["region", "amount"]).reset_index(drop=True))

    (folder / "_SUCCESS").unlink()  # as a writer that died before committing leaves it
    with pytest.raises(DbndError) as caught:
        run(in_project.sp_count_rows, set={"sp_count_rows.data": str(folder)}, env="spark_local")
    assert is_input_error(caught.value) and caught.value.exit_code == 2
    assert "_SUCCESS" in str(caught.value) and str(folder) in str(caught.value)


def test_pandas_from_spark_is_size_guarded(in_project, local_session, configured):
    from dbnd_prefect import run
    from dbnd_prefect.errors import DbndError

    with pytest.raises(DbndError) as caught:
        run(in_project.sp_sales_pipeline, env="tiny_pandas")
    message = str(caught.value)
    assert "task 'sp_report', parameter 'totals'" in message and "more than 2 rows" in message
    assert "env.tiny_pandas.spark.to_pandas_max_rows" in message and "\n" not in message


def test_log_dataframe_computes_the_profile_in_spark(in_project, local_session, configured):
    from dbnd_prefect.tracking.profiling import ProfileOptions, profile_data

    frame = local_session.createDataFrame(SALES.assign(note=[None, "x", None, "y", "z", None]))
    profile = profile_data(frame, ProfileOptions())
    assert profile["engine"] == "spark" and profile["rows"] == 6
    assert profile["columns"]["note"]["nulls"] == 3
    amount = profile["columns"]["amount"]
    assert amount["min"] == -5 and amount["max"] == 20 and abs(amount["mean"] - 6.0) < 1e-9
    automatic = profile_data(frame, ProfileOptions(automatic=True))
    assert automatic["rows"] is None and automatic["schema"] == {"region": "string", "amount": "bigint",
                                                                 "note": "string"}


def test_failing_spark_job_is_a_task_failure_and_writes_nothing(in_project, local_session, configured):
    from dbnd_prefect import run
    from dbnd_prefect.errors import TaskFailedError

    with pytest.raises(TaskFailedError) as caught:
        run(in_project.sp_exploding, env="spark_local")
    assert caught.value.exit_code == 1 and "the amounts do not add up" in str(caught.value)
    assert "task 'sp_explode'" in str(caught.value)
    explode_outputs = [p for p in (configured / "data").rglob("sp_explode*") if p.is_dir()]
    assert not [p for folder in explode_outputs for p in folder.rglob("*") if p.is_file()]


# --- Spark Connect ---------------------------------------------------------------------------------------


def test_connect_engine_gives_the_same_outputs_as_local(in_project, local_session, connect_session, configured):
    from dbnd_prefect import run

    local = run(in_project.sp_sales_pipeline, env="spark_local")
    remote = run(in_project.sp_sales_pipeline, env="spark_connect")
    assert set(states(remote).values()) == {"Completed"}  # another environment: its own outputs
    pd.testing.assert_frame_equal(remote.values, local.values)
    on_local = Path(local.task_outputs["sp_totals"]["result"])
    on_connect = Path(remote.task_outputs["sp_totals"]["result"])
    assert on_local != on_connect
    pd.testing.assert_frame_equal(spark_folder_frame(on_connect), spark_folder_frame(on_local))
    again = run(in_project.sp_sales_pipeline, env="spark_connect")
    assert set(states(again).values()) == {"Cached"}


def test_connect_frame_fingerprint_is_the_same_in_another_session(in_project, connect_session, configured):
    from dbnd_prefect.fingerprint import fingerprint_value

    source = str(configured / "sales.csv")
    query = connect_session.read.option("header", True).csv(source).where("amount > 0").groupBy("region").count()
    here = fingerprint_value(query)
    assert fingerprint_value(connect_session.createDataFrame(SALES)) != fingerprint_value(
        connect_session.createDataFrame(SALES.head(2)))
    code = textwrap.dedent(f'''
        from dbnd_prefect.config import config_context
        from dbnd_prefect.fingerprint import fingerprint_value
        from dbnd_prefect.spark import spark_session
        with config_context({{"run": {{"env": "spark_connect"}}}}):
            spark = spark_session()
        spark.range(3).count()  # another session, whose expression ids have moved on
        query = spark.read.option("header", True).csv({source!r}).where("amount > 0").groupBy("region").count()
        print(fingerprint_value(query))
        ''')
    proc = subprocess.run([sys.executable, "-c", code], cwd=configured, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == here
    assert "FutureWarning" not in proc.stderr


def test_cli_run_on_connect_prints_no_error_and_no_warning(configured, connect_session):
    proc = dbnd(configured, "run", "sp_sales_pipeline", "--env", "spark_connect", "--set", "run.data_root=cli")
    assert proc.returncode == 0, proc.stderr
    for noise in ("ERROR", "Traceback", "Warning", "WARN"):
        assert noise not in proc.stderr, proc.stderr
    report = next(configured.glob("cli/spark_connect/*/sp_report/sp_report_*/result.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(report), pd.DataFrame(
        {"region": ["apac", "eu", "us"], "total": [7.0, 11.0, 23.0], "orders": [1, 2, 2]}), check_dtype=False)


# --- engines that cannot start: the real CLI ----------------------------------------------------------------


def written(root: Path) -> list[Path]:
    """Files under a data root other than run records."""
    return [p for p in root.rglob("*") if p.is_file() and "runs" not in p.relative_to(root).parts]


def test_no_java_is_one_line_exit_2_and_nothing_written(configured):
    proc = dbnd(configured, "run", "sp_sales_pipeline", "--env", "spark_local", "--set", "run.data_root=nojava",
                env={"JAVA_HOME": "/nonexistent/java"})
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if "| INFO " not in line]
    assert len(lines) == 1, proc.stderr
    assert "Spark engine 'local'" in lines[0] and "JAVA_HOME=/nonexistent/java" in lines[0]
    assert str(configured / "sales.csv") in lines[0] and "task 'sp_clean', parameter 'raw'" in lines[0]
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr
    assert not written(configured / "nojava")


def test_connect_server_down_is_one_line_exit_2(configured):
    proc = dbnd(configured, "run", "sp_sales_pipeline", "--env", "spark_down", "--set", "run.data_root=down")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if "| INFO " not in line]
    assert len(lines) == 1, proc.stderr
    assert "Spark engine 'connect'" in lines[0] and "cannot be reached" in lines[0]
    assert "start the Spark Connect server" in lines[0]
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr
    assert not written(configured / "down")
