"""Spark tasks of a Databricks profile sent to the cluster as job runs, against minilake (a local Databricks API).

minilake runs each job as a subprocess of this interpreter; its environment holds the S3 emulator's endpoint and
keys, as a cluster's instance profile would. The launcher takes that process's own Spark driver (a local one
here, the cluster's on Databricks). The data root is a bucket on moto that both sides reach. What is checked:
the Spark tasks run as Databricks runs (and only they), the other task here; the results are right; a second
run submits nothing; changed code is uploaded once more; `dbnd plan` says where tasks would run; each task run
links to its Databricks run; a failing job is one line naming the run and its state, exit 1; the block's
token appears nowhere.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.servers import s3_env
from tests.test_databricks_jobs import TOKEN, running_minilake, save_block

pytestmark = [pytest.mark.slow]

DBND = Path(sys.executable).parent / "dbnd"

STEPS = '''
import pandas as pd
from pyspark.sql import DataFrame as SparkFrame, functions as F

from dbnd_prefect import pipeline, task

MINIMUM = 0


@task
def dbx_clean(raw: SparkFrame) -> SparkFrame:
    return raw.where(F.col("amount") > MINIMUM).withColumn("amount", F.col("amount").cast("double"))


@task
def dbx_totals(sales: SparkFrame) -> SparkFrame:
    return sales.groupBy("region").agg(F.sum("amount").alias("total"), F.count(F.lit(1)).alias("orders"))


@task
def dbx_report(totals: pd.DataFrame) -> pd.DataFrame:
    return totals.sort_values("region").reset_index(drop=True)


@pipeline
def dbx_sales(raw: str):
    return dbx_report(dbx_totals(dbx_clean(raw)))


@task
def dbx_explode(data: SparkFrame) -> SparkFrame:
    return data.select(F.raise_error(F.lit("the amounts do not add up")).alias("never"))


@pipeline
def dbx_exploding(raw: str):
    return dbx_explode(raw)
'''

SALES = pd.DataFrame({"region": ["eu", "us", "eu", "apac", "us", "eu"], "amount": [10, 20, -5, 7, 3, 1]})
EXPECTED = pd.DataFrame({"region": ["apac", "eu", "us"], "total": [7.0, 11.0, 23.0], "orders": [1, 2, 2]})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3_server) -> Iterator[tuple[int, Path]]:
    """minilake whose jobs reach the S3 emulator (the cluster's credentials, not the profile's)."""
    with running_minilake(tmp_path_factory.mktemp("minilake"), s3_env(s3_server.url)) as found:
        yield found


@pytest.fixture
def project(tmp_path: Path, cluster, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project whose profile `dbx` sends Spark tasks to minilake's cluster, its data in a fresh bucket."""
    port, cert = cluster
    block = save_block(port, cert)
    (tmp_path / "dbx_steps.py").write_text(STEPS)
    (tmp_path / "dbnd.toml").write_text(textwrap.dedent(f'''
        [run]
        modules = ["dbx_steps"]

        [env.dbx]
        data_root = "s3://{s3_bucket}/lake"

        [env.dbx.spark]
        engine = "databricks"
        credentials_block = "{block}"
        cluster_id = "local-1"
        poll_seconds = 1
        workspace_dir = "/Shared/dbnd-tests"
        conf = {{ "spark.sql.shuffle.partitions" = "2" }}
        '''))
    import s3fs

    s3fs.S3FileSystem().pipe(f"{s3_bucket}/in/sales.csv", SALES.to_csv(index=False).encode())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    yield tmp_path
    sys.modules.pop("dbx_steps", None)
    reset_config_cache()


def dbnd(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    return subprocess.run([str(DBND), *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def api(cluster: tuple[int, Path], path: str) -> dict[str, Any]:
    port, cert = cluster
    context = ssl.create_default_context(cafile=str(cert))
    request = urllib.request.Request(f"https://127.0.0.1:{port}/api/{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.load(response)


def databricks_runs(cluster) -> list[dict[str, Any]]:
    return api(cluster, "2.2/jobs/runs/list?limit=100").get("runs", [])


def launchers(cluster) -> list[str]:
    try:
        found = api(cluster, "2.0/workspace/list?path=/Shared/dbnd-tests/tasks").get("objects", [])
    except urllib.error.HTTPError:
        return []
    return sorted(item["path"] for item in found)


def links(task: str, task_run_id: str) -> list[Any]:
    """The link artifacts of the task run `task_run_id` to its Databricks run."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    key = f"databricks-run-{task.replace('_', '-')}"
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return [artifact for artifact in found if str(artifact.task_run_id) == task_run_id]


def manifests(bucket: str, task: str) -> list[dict[str, Any]]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    return [json.loads(fs.cat(path)) for path in fs.glob(f"{bucket}/lake/dbx/*/{task}/{task}_*/_manifest.json")]


def test_spark_tasks_run_as_databricks_jobs_and_a_second_run_submits_none(project, cluster, s3_bucket):
    raw = f"s3://{s3_bucket}/in/sales.csv"
    before = len(databricks_runs(cluster))

    plan = dbnd(project, "plan", "dbx_sales", "--env", "dbx", "--set", f"dbx_sales.raw={raw}")
    assert plan.returncode == 0, plan.stderr
    where = "runs as: a Databricks job on cluster local-1 (environment 'dbx')"
    blocks = {block.split()[0]: block for block in plan.stdout.split("\ndbx_")[1:]}
    assert where in blocks["clean"] and where in blocks["totals"] and where not in blocks["report"], plan.stdout

    first = dbnd(project, "run", "dbx_sales", "--env", "dbx", "--set", f"dbx_sales.raw={raw}")
    assert first.returncode == 0, first.stderr
    assert "ERROR" not in first.stderr and "Traceback" not in first.stderr, first.stderr
    runs = databricks_runs(cluster)[: len(databricks_runs(cluster)) - before]
    assert len(runs) == 2 and all(run["state"]["result_state"] == "SUCCESS" for run in runs), runs
    # the Spark tasks ran in the jobs' processes, from the one launcher their module's code went up in
    (launcher,) = launchers(cluster)
    for task in ("dbx_clean", "dbx_totals"):
        (manifest,) = manifests(s3_bucket, task)
        assert manifest["command_line"][0].endswith(launcher.rsplit("/", 1)[1]), manifest["command_line"]
    # each Spark task run links to its Databricks run
    pages = {run["run_name"].split()[1]: run["run_page_url"] for run in runs}
    assert set(pages) == {"dbx_clean", "dbx_totals"}
    for task, page in pages.items():
        (link,) = links(task, manifests(s3_bucket, task)[0]["prefect"]["task_run_id"])
        assert link.data == f"[Databricks run {page.rsplit('/', 1)[1]}]({page})" and f"127.0.0.1:{cluster[0]}" in page
    (report,) = manifests(s3_bucket, "dbx_report")
    assert report["command_line"][0] != manifests(s3_bucket, "dbx_clean")[0]["command_line"][0]
    import s3fs

    with s3fs.S3FileSystem().open(report["outputs"]["result"]["uri"]) as handle:
        pd.testing.assert_frame_equal(pd.read_parquet(handle), EXPECTED, check_dtype=False)

    second = dbnd(project, "run", "dbx_sales", "--env", "dbx", "--set", f"dbx_sales.raw={raw}")
    assert second.returncode == 0, second.stderr
    assert len(databricks_runs(cluster)) == before + 2  # all reused: nothing submitted
    assert "Cached" in second.stderr + second.stdout

    # changed code: one more upload, and the changed task (and the one reading its output) run again
    (project / "dbx_steps.py").write_text(STEPS.replace("MINIMUM = 0", "MINIMUM = 5"))
    third = dbnd(project, "run", "dbx_sales", "--env", "dbx", "--set", f"dbx_sales.raw={raw}")
    assert third.returncode == 0, third.stderr
    assert len(launchers(cluster)) == 2 and len(databricks_runs(cluster)) == before + 4
    everything = first.stdout + first.stderr + second.stdout + second.stderr + third.stdout + third.stderr
    assert TOKEN not in everything
    assert all(TOKEN not in json.dumps(m) for m in manifests(s3_bucket, "dbx_clean"))


def test_a_failing_job_is_one_line_naming_the_run_and_its_state(project, cluster, s3_bucket):
    proc = dbnd(project, "run", "dbx_exploding", "--env", "dbx", "--set", f"dbx_exploding.raw=s3://{s3_bucket}/in/sales.csv")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "Databricks run" in line]
    assert len(errors) == 1 and "ended FAILED" in errors[0] and "dbx_explode" in errors[0], proc.stderr
    assert "the amounts do not add up" in errors[0]
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr + proc.stdout
    assert manifests(s3_bucket, "dbx_explode") == []


def test_a_local_data_root_is_refused_before_anything_is_submitted(project, cluster):
    before = len(databricks_runs(cluster))
    proc = dbnd(project, "run", "dbx_sales", "--env", "dbx", "--set", "env.dbx.data_root=data",
                "--set", "dbx_sales.raw=in.csv")
    assert proc.returncode == 2, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "environment 'dbx' runs work off this machine (its Spark tasks run as Databricks jobs" in line, line
    assert len(databricks_runs(cluster)) == before
