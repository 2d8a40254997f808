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
from dbnd_prefect.pytest_plugin import run_cmd
from dbnd_prefect.api.results import load_task_outputs
from tests.servers import create_s3_bucket, set_s3_env, unique_name
from tests.test_deployments import process_worker
from tests.test_entry_points import command, ok

DRIVER = '''\
import datetime
import json
import os

from pandas import DataFrame

from dbnd_prefect import pipeline, task


@task
def numbers(n: int = 5) -> DataFrame:
    return DataFrame({"x": list(range(n))})


@task(task_env="remote")
def total(frame: DataFrame, weights: DataFrame, day: datetime.date = datetime.date(2026, 1, 1), scale: int = 2) -> dict:
    return {"sum": int((frame["x"] * weights["w"]).sum()) * scale, "day": day.isoformat(), "pid": os.getpid()}


@task(task_env="remote")
def boom(n: int = 1) -> int:
    raise ValueError(f"boom {n} in the worker")


@task
def report(summary: dict) -> str:
    return f"{summary['sum']} from {summary['pid']}"


@pipeline
def remote_pipeline(n: int = 5):
    summary = total(numbers(n), DataFrame({"w": [1] * n}), day=datetime.date(2026, 11, 29))
    return summary, report(summary)


if __name__ == "__main__":
    result = remote_pipeline.run()
    print(json.dumps({"values": result.values, "driver_pid": os.getpid(), "flow_run_id": result.run.flow_run_id,
                      "outputs": result.task_outputs, "states": {e["task"]: e["state"] for e in result.run.task_runs}}))
'''

BAD = '''\
from pandas import DataFrame

from dbnd_prefect import pipeline, task


@task(task_env="remot")
def misspelled(n: int = 1) -> int:
    return n


@task(task_env="poolless")
def no_pool(n: int = 1) -> int:
    return n


@task(task_env="dockerish")
def count_rows(frame: DataFrame) -> int:
    return len(frame)


@task(task_env="dockerish")
def call_service(api_token: str = "") -> int:
    return len(api_token)


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
        f'[env.poolless]\nwork_pool = {{ name = "no-such-pool-{uuid.uuid4().hex[:6]}" }}\n\n'
        f'[env.idle]\nwork_pool = {{ name = "idle-{uuid.uuid4().hex[:6]}" }}\n\n'
        f'[env.dockerish]\nextends = "docker"\ndata_root = "s3://{bucket}/root"\n'
        f'work_pool = {{ name = "dock-{uuid.uuid4().hex[:6]}", type = "docker" }}\n')
    with pytest.MonkeyPatch.context() as monkeypatch:
        set_s3_env(monkeypatch, s3_server.url)  # the driver and the worker's flow runs inherit it
        create_s3_bucket(s3_server.url, bucket)
        with process_worker(pool, root):
            yield root, bucket, pool


@pytest.fixture
def in_project(project, monkeypatch):
    """The project as the working directory of this process (for `dbnd` commands run in process)."""
    from dbnd_prefect.config import reset_config_cache

    monkeypatch.chdir(project[0])
    reset_config_cache()
    yield project[0]
    reset_config_cache()


def task_flow_runs() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["dbnd-task"])))


def drive(root: Path) -> tuple[dict, float]:
    started = time.monotonic()
    proc = command(sys.executable, "driver.py", cwd=root, timeout=240)
    out = ok(proc)
    assert "ERROR" not in proc.stderr, proc.stderr  # a successful run: Prefect's INFO lines at most
    return json.loads(out.strip().splitlines()[-1]), time.monotonic() - started


@pytest.mark.slow
def test_task_runs_on_its_profiles_pool_and_is_reused(project, in_project):
    from prefect.client.orchestration import get_client

    root, bucket, pool = project
    before = {r.id for r in task_flow_runs()}
    first, first_seconds = drive(root)
    summary, report = first["values"]
    assert summary["sum"] == 20 and summary["pid"] != first["driver_pid"], first  # ran in another process
    assert summary["day"] == "2026-11-29"  # a date again in the worker
    assert report == f"20 from {summary['pid']}"  # the downstream task here got the real value
    assert first["states"] == {"numbers": "Completed", "total": "Completed", "report": "Completed"}, first
    assert first["outputs"]["total"]["result"].startswith(f"s3://{bucket}/root/remote/"), first["outputs"]
    assert first["outputs"]["numbers"]["result"].startswith(str(root / "data" / "local")), first["outputs"]

    (remote,) = [r for r in task_flow_runs() if r.id not in before]
    assert remote.state.is_completed() and remote.name.startswith("total-")
    assert remote.parameters["task"] == "driver.py:total"
    arguments = remote.parameters["arguments"]  # data by URI: an upstream output, an in-memory frame stored
    assert arguments["frame"]["__dbnd_output__"]["uri"] == first["outputs"]["numbers"]["result"]
    assert arguments["weights"]["__dbnd_stored__"].startswith(f"s3://{bucket}/root/inputs/"), arguments
    assert arguments["day"] == "2026-11-29" and "scale" in arguments
    with get_client(sync_client=True) as client:
        link = client.read_task_run(remote.parent_task_run_id)  # the run is shown under the pipeline's run
        deployment = client.read_deployment(remote.deployment_id)
        worker_runs = client.read_task_runs(flow_run_filter=_by_id(remote.id))
    assert str(link.flow_run_id) == first["flow_run_id"]
    assert link.state.is_completed(), link.state  # the link's state follows the flow run's
    assert deployment.work_pool_name == pool
    assert deployment.job_variables["env"]["DBND__RUN__ENV"] == "remote"
    assert [t.name.split("-")[0] for t in worker_runs] == ["total"]  # a task run of the worker's flow run

    manifest = _s3_json(first["outputs"]["total"]["result"].rsplit("/", 1)[0] + "/" + MANIFEST_NAME)
    assert manifest["prefect"]["root_flow_run_id"] == first["flow_run_id"]
    assert manifest["prefect"]["flow_run_id"] == str(remote.id)
    assert manifest["inputs"][0]["producer_task"] == "numbers"

    started = time.monotonic()
    second = run_cmd(["run", "driver.py:remote_pipeline"])  # `dbnd run`, in this process: same signatures
    second_seconds = time.monotonic() - started
    assert second.exit_code == 0, second
    assert {e["task"]: e["state"] for e in second.run.task_runs}["total"] == "Cached", second.run.task_runs
    assert load_task_outputs(second.run, "total")["result"] == summary  # the version the worker stored
    assert {r.id for r in task_flow_runs()} - before == {remote.id}  # nothing submitted
    print(f"\nremote task: first run (script) {first_seconds:.1f} s, reused (in process) {second_seconds:.1f} s")

    plan = run_cmd(["plan", "driver.py:remote_pipeline"])  # in this process, in the project
    assert "would reuse 3 task run(s) and run 0" in plan.stdout, plan  # it looks in the profile's root too


@pytest.mark.slow
def test_a_failing_task_is_one_line_naming_it_and_its_flow_run(in_project):
    proc = run_cmd(["run", "driver.py:boom", "--set", "n=7"])  # a task on its own: its one-task flow runs here
    assert proc.exit_code == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "task 'boom' failed in environment 'remote' (flow run boom-" in lines[0], lines[0]
    assert "ValueError: boom 7 in the worker" in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


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
def test_unknown_environment_or_missing_pool_is_one_line_and_exit_2(in_project, pipeline, expected):
    before = len(task_flow_runs())
    proc = run_cmd(["run", f"bad.py:{pipeline}"])
    assert proc.exit_code == 2, proc
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


def test_a_run_no_worker_takes_is_reported_once_while_waiting(in_project, monkeypatch, caplog):
    """A pool nobody polls would make the caller wait silently: after a while it says so, naming the pool."""
    import logging
    import threading

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.states import Cancelled

    from dbnd_prefect.engine import remote_caller as remote_tasks
    from dbnd_prefect.config import current_config
    from dbnd_prefect.config.profiles import resolve_profile

    resolved = resolve_profile(current_config(), "idle")
    pool = resolved.profile.work_pool.name
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    flow_run = run_deployment(remote_tasks.ensure_deployment(resolved, "idle"), timeout=0, as_subflow=False,
                              parameters={"task": "x.py:f", "module": "", "arguments": {}, "signature": {},
                                          "settings": {}, "run_date": "2026-11-29"})
    monkeypatch.setattr(remote_tasks, "WAIT_WARNING_SECONDS", 1.0)
    ended: list = []
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        waiting = threading.Thread(target=lambda: ended.append(remote_tasks._wait(flow_run, "total", pool)))
        waiting.start()
        deadline = time.monotonic() + 60  # the warning comes after WAIT_WARNING_SECONDS; a loaded machine is slow
        while not any("waited" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # longer than one more warning period: a repeated warning would show by now
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Cancelled(), force=True)
        waiting.join(timeout=30)
    assert ended and ended[0].state.is_cancelled()
    warnings = [r.getMessage() for r in caplog.records if "waited" in r.getMessage()]
    assert len(warnings) == 1 and f"work pool '{pool}'" in warnings[0] and "prefect worker start" in warnings[0]


def test_a_local_input_is_uploaded_for_a_profile_off_this_machine_and_a_folder_refused(in_project, project):
    """A docker profile (its pool exists, no engine needed: the run is cancelled before a worker takes it) gets
    a local input file uploaded to its S3 root, content-addressed; a local folder, or a credential that would
    be stored with the flow run's parameters, is one line, exit 2, nothing submitted."""
    import threading

    import s3fs
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.states import Cancelled

    from dbnd_prefect.config import current_config
    from dbnd_prefect.config.profiles import resolve_profile

    root, bucket, _ = project
    (root / "rows.csv").write_text("a\n1\n2\n3\n")
    (root / "parts").mkdir(exist_ok=True)
    (root / "parts" / "part-0.csv").write_text("a\n1\n")
    (root / "parts" / "_SUCCESS").write_text("")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=resolve_profile(current_config(), "dockerish").profile.work_pool.name,
                                               type="docker"))
    before = {r.id for r in task_flow_runs()}
    refused = run_cmd(["run", "bad.py:count_rows", "--set", "frame=parts/"])
    assert refused.exit_code == 2, refused
    assert len(refused.stderr.strip().splitlines()) == 1 and "task 'count_rows', parameter 'frame'" in refused.stderr
    assert "is a folder on this machine, but environment 'dockerish' runs work off it" in refused.stderr
    assert {r.id for r in task_flow_runs()} == before  # nothing submitted

    secret = run_cmd(["run", "bad.py:call_service", "--set", "api_token=tok-1234567890abcdef"])
    assert secret.exit_code == 2, secret  # flow run parameters are stored by the Prefect API: no credentials
    assert len(secret.stderr.strip().splitlines()) == 1 and "parameter 'api_token': its value holds a credential" \
        in secret.stderr and "tok-1234567890abcdef" not in secret.stderr, secret.stderr
    assert {r.id for r in task_flow_runs()} == before

    done: list = []
    caller = threading.Thread(target=lambda: done.append(run_cmd(["run", "bad.py:count_rows", "--set", "frame=rows.csv"])))
    caller.start()
    deadline = time.monotonic() + 60
    while not (new := [r for r in task_flow_runs() if r.id not in before]) and time.monotonic() < deadline:
        time.sleep(0.5)
    (submitted,) = new
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(submitted.id, Cancelled(), force=True)
    caller.join(timeout=60)
    uri = submitted.parameters["arguments"]["frame"]
    assert uri.startswith(f"s3://{bucket}/root/inputs/") and uri.endswith("/rows.csv"), uri
    assert s3fs.S3FileSystem(skip_instance_cache=True).cat_file(uri.removeprefix("s3://")) == b"a\n1\n2\n3\n"
    assert done and done[0].exit_code == 1, done
    assert "task 'count_rows' failed in environment 'dockerish'" in done[0].stderr and "Cancelled" in done[0].stderr
