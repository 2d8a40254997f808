"""`@task(task_env="NAME")`: a task that runs as a deployment run on its profile's work pool.

A real Prefect server (the session's), a process work pool with a real `prefect worker`, and a profile
`remote` whose data root is an S3 bucket on moto. A pipeline run by a script (its driver, env `local`)
calls an upstream task here, the `remote` task on the worker and a downstream task here again. The task
runs in the worker's process, the caller gets its real value, the flow run is linked under the pipeline's
task run, its outputs are in the profile's root, and a second run reuses them without submitting anything.
An unknown `task_env` or a missing work pool is one line and exit 2 from `dbnd run`, nothing submitted.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest

from dbnd_prefect.layout import MANIFEST_NAME
from tests.servers import create_s3_bucket, set_s3_env, unique_name
from tests.test_deployments import BIN, process_worker
from tests.test_entry_points import command, ok

DRIVER = '''\
import json
import os

from pandas import DataFrame

from dbnd_prefect import pipeline, task


@task
def numbers(n: int = 5) -> DataFrame:
    return DataFrame({"x": list(range(n))})


@task(task_env="remote")
def total(frame: DataFrame, scale: int = 2) -> dict:
    return {"sum": int(frame["x"].sum()) * scale, "pid": os.getpid()}


@task
def report(summary: dict) -> str:
    return f"{summary['sum']} from {summary['pid']}"


@pipeline
def remote_pipeline(n: int = 5):
    summary = total(numbers(n))
    return summary, report(summary)


if __name__ == "__main__":
    result = remote_pipeline.run()
    print(json.dumps({"values": result.values, "driver_pid": os.getpid(), "flow_run_id": result.run.flow_run_id,
                      "outputs": result.task_outputs, "states": {e["task"]: e["state"] for e in result.run.task_runs}}))
'''

BAD = '''\
from dbnd_prefect import pipeline, task


@task(task_env="remot")
def misspelled(n: int = 1) -> int:
    return n


@task(task_env="poolless")
def no_pool(n: int = 1) -> int:
    return n


@pipeline
def misspelled_pipeline():
    return misspelled()


@pipeline
def no_pool_pipeline():
    return no_pool()
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory, s3_server):
    """A project whose `remote` profile runs on a process pool (with a worker) and keeps data in S3 (moto);
    yields (project, bucket, pool)."""
    root = tmp_path_factory.mktemp("task-env") / "project"
    root.mkdir()
    bucket = unique_name("dbnd-task-env")
    pool = f"remote-{uuid.uuid4().hex[:8]}"
    (root / "driver.py").write_text(DRIVER)
    (root / "bad.py").write_text(BAD)
    (root / "dbnd.toml").write_text(
        '[run]\ndata_root = "data"\n\n'
        f'[env.remote]\ndata_root = "s3://{bucket}/root"\nwork_pool = {{ name = "{pool}" }}\n\n'
        f'[env.poolless]\nwork_pool = {{ name = "no-such-pool-{uuid.uuid4().hex[:6]}" }}\n')
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_s3_env(monkeypatch, s3_server.url)  # the driver and the worker's flow runs inherit it
        create_s3_bucket(s3_server.url, bucket)
        with process_worker(pool, root):
            yield root, bucket, pool


def task_flow_runs() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["dbnd-task"])))


def drive(root: Path) -> tuple[dict, float]:
    started = time.monotonic()
    out = ok(command(sys.executable, "driver.py", cwd=root, timeout=240))
    return json.loads(out.strip().splitlines()[-1]), time.monotonic() - started


@pytest.mark.slow
def test_task_runs_on_its_profiles_pool_and_is_reused(project):
    from prefect.client.orchestration import get_client

    root, bucket, pool = project
    before = {r.id for r in task_flow_runs()}
    first, first_seconds = drive(root)
    summary, report = first["values"]
    assert summary["sum"] == 20 and summary["pid"] != first["driver_pid"], first  # ran in another process
    assert report == f"20 from {summary['pid']}"  # the downstream task here got the real value
    assert first["states"] == {"numbers": "Completed", "total": "Completed", "report": "Completed"}, first
    assert first["outputs"]["total"]["result"].startswith(f"s3://{bucket}/root/remote/"), first["outputs"]
    assert first["outputs"]["numbers"]["result"].startswith(str(root / "data" / "local")), first["outputs"]

    (remote,) = [r for r in task_flow_runs() if r.id not in before]
    assert remote.state.is_completed() and remote.name.startswith("total-")
    assert remote.parameters["task"] == "driver.py:total"
    assert remote.parameters["arguments"]["frame"]["__dbnd_output__"]["uri"] == first["outputs"]["numbers"]["result"]
    with get_client(sync_client=True) as client:
        link = client.read_task_run(remote.parent_task_run_id)  # the run is shown under the pipeline's run
        deployment = client.read_deployment(remote.deployment_id)
        worker_runs = client.read_task_runs(flow_run_filter=_by_id(remote.id))
    assert str(link.flow_run_id) == first["flow_run_id"]
    assert deployment.work_pool_name == pool
    assert deployment.job_variables["env"]["DBND__RUN__ENV"] == "remote"
    assert [t.name.split("-")[0] for t in worker_runs] == ["total"]  # a task run of the worker's flow run

    manifest = _s3_json(first["outputs"]["total"]["result"].rsplit("/", 1)[0] + "/" + MANIFEST_NAME)
    assert manifest["prefect"]["root_flow_run_id"] == first["flow_run_id"]
    assert manifest["prefect"]["flow_run_id"] == str(remote.id)
    assert manifest["inputs"][0]["producer_task"] == "numbers"

    second, second_seconds = drive(root)
    assert second["values"] == first["values"]  # the stored version, made by the first worker process
    assert second["states"]["total"] == "Cached", second
    assert {r.id for r in task_flow_runs()} - before == {remote.id}  # nothing submitted
    print(f"\nremote task: first run {first_seconds:.1f} s, reused {second_seconds:.1f} s")


def _by_id(flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))


def _s3_json(uri: str) -> dict:
    import s3fs

    return json.loads(s3fs.S3FileSystem(skip_instance_cache=True).cat_file(uri.removeprefix("s3://")))


@pytest.mark.parametrize("pipeline, expected", [
    ("misspelled_pipeline", "task 'misspelled' (task_env='remot'): unknown environment 'remot'; did you mean 'remote'?"),
    ("no_pool_pipeline", "work pool 'no-such-pool-"),
])
def test_unknown_environment_or_missing_pool_is_one_line_and_exit_2(project, pipeline, expected):
    root, _, _ = project
    before = len(task_flow_runs())
    proc = command(str(BIN / "dbnd"), "run", f"bad.py:{pipeline}", cwd=root)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    if pipeline == "no_pool_pipeline":
        assert "nothing submitted" in lines[0] and "prefect work-pool create" in lines[0]
    assert len(task_flow_runs()) == before


def test_task_env_options_are_checked_at_decoration():
    from dbnd_prefect import task
    from dbnd_prefect.errors import ParameterError

    with pytest.raises(ParameterError, match="versioned=False keeps them in memory only"):
        task(task_env="remote", versioned=False)(lambda n=1: n)
    with pytest.raises(ParameterError, match="did you mean 'task_env'"):
        task(task_envs="remote")(lambda n=1: n)
