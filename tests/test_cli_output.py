"""What the real `dbnd` console script prints: a quiet successful run, a run id that every command
accepts, the parameters of a pipeline's tasks in --help, and every run key in show-config."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbnd_prefect.config.settings import RUN_KEYS
from tests.conftest import REPO

DBND = Path(sys.executable).parent / "dbnd"
RUN_LINE = re.compile(r"run ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) finished \(env local, ")

STEPS = '''
from pandas import DataFrame
from dbnd_prefect import pipeline, task


@task
def make_rows(n: int, scale: float = 1.5) -> DataFrame:
    return DataFrame({"x": [i * scale for i in range(n)]})


@task
def count_rows(table: DataFrame) -> int:
    return len(table)


@pipeline
def rows_pipe(n: int = 3):
    return count_rows(make_rows(n))


@task
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain(n: int = 20):
    value = 0
    for _ in range(n):
        value = inc(value)
    return value
'''


def dbnd(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
         ) -> subprocess.CompletedProcess:
    """`dbnd ARGS` in `project`; on a timeout the whole process group (a temporary server too) is killed."""
    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = os.pathsep.join([str(project), str(REPO)])
    proc = subprocess.Popen([str(DBND), *args], cwd=project, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"dbnd {' '.join(args)} timed out:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["steps"]\n')
    (tmp_path / "steps.py").write_text(STEPS)
    return tmp_path


def assert_quiet(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise in ("ERROR", "Traceback", "Failed to send telemetry", "Still processing items", "CancelledError"):
        assert noise not in proc.stderr, proc.stderr[-3000:]


def printed_run_id(proc: subprocess.CompletedProcess) -> str:
    match = RUN_LINE.match(proc.stdout)
    assert match, proc.stdout
    return match.group(1)


def test_the_printed_run_id_is_taken_by_reproduce_selectors_and_versions(project):
    first = dbnd(project, "run", "rows_pipe", "--set", "n=4")
    assert_quiet(first)
    run_id = printed_run_id(first)
    assert f"run record: {project / 'data' / '.dbnd' / 'runs' / run_id}.json" in first.stdout

    versions = dbnd(project, "versions", "make_rows", "result")
    assert versions.returncode == 0, versions.stderr
    assert run_id in versions.stdout.splitlines()[2]  # the FLOW RUN column of the newest version

    selected = dbnd(project, "run", "count_rows", "--set", f"table=make_rows.result@run:{run_id[:8]}")
    assert_quiet(selected)
    assert "  count_rows: Completed" in selected.stdout

    reproduced = dbnd(project, "reproduce", run_id)
    assert reproduced.returncode == 0, reproduced.stderr[-3000:]
    assert reproduced.stdout.startswith(f"reproduced flow run {run_id}: 2 of 2 output(s) match")

    # a run that reuses every stored output wrote no manifest of its own: its id works all the same
    again = dbnd(project, "run", "rows_pipe", "--set", "n=4")
    assert_quiet(again)
    cached_id = printed_run_id(again)
    assert cached_id != run_id and "  make_rows: Cached" in again.stdout
    reused = dbnd(project, "run", "count_rows", "--set", f"table=make_rows.result@run:{cached_id}")
    assert_quiet(reused)  # the selector found the output that run reused (else: exit 2, nothing stored)
    assert "  count_rows: Cached" in reused.stdout  # the same input as the @run:{run_id} run above
    reproduced_cached = dbnd(project, "reproduce", cached_id)
    assert reproduced_cached.returncode == 0, reproduced_cached.stderr[-3000:]
    assert reproduced_cached.stdout.startswith(f"reproduced flow run {cached_id}: 2 of 2 output(s) match")


def test_pipeline_help_lists_the_parameters_of_the_tasks_it_calls(project):
    proc = dbnd(project, "run", "rows_pipe", "--help", "--set", "make_rows.scale=2.5")
    assert proc.returncode == 0, proc.stderr
    lines = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("parameters of the tasks rows_pipe calls"))
    assert lines[start + 1: start + 5] == [
        "NAME TYPE DEFAULT VALUE NOW FROM",  # tasks in the order the pipeline's code names them
        "count_rows.table pandas.DataFrame (data: path or URI) (required) (passed by the pipeline) call site",
        "make_rows.n int (required) (passed by the pipeline) call site",
        "make_rows.scale float 1.5 '2.5' set layer, --set make_rows.scale=2.5",
    ]
    task_help = dbnd(project, "run", "make_rows", "--help")
    assert task_help.returncode == 0 and "parameters of the tasks" not in task_help.stdout


def test_show_config_lists_every_run_key_with_its_default(project):
    proc = dbnd(project, "show-config", "--set", "run.verify=full")
    assert proc.returncode == 0, proc.stderr
    lines = [" ".join(line.split()) for line in proc.stdout.splitlines()]
    run_rows = lines[lines.index("[run]") + 1:]
    run_rows = run_rows[: next((i for i, line in enumerate(run_rows) if line.startswith("[")), len(run_rows))]
    assert sorted(row.split(" = ")[0] for row in run_rows) == sorted(RUN_KEYS)
    assert "verify = 'full' # set layer, --set run.verify=full" in run_rows
    assert "data_root = 'data' # project layer, dbnd.toml:2" in run_rows
    assert "input_fingerprint = 'fast' # default layer, default" in run_rows
    assert "task_version = None # default layer, default" in run_rows


@pytest.mark.slow
def test_a_run_on_prefects_temporary_server_is_quiet(project, tmp_path_factory):
    """No PREFECT_API_URL and a fresh PREFECT_HOME: Prefect starts and stops its temporary server."""
    (project / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["steps"]\napi = "temporary"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DO_NOT_TRACK"}
    env.update(PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")  # a busy machine starts it slowly
    proc = dbnd(project, "run", "chain", "--task-version", "now", env=env, timeout=300)
    assert_quiet(proc)
    assert "Starting temporary server" in proc.stderr  # it did run on Prefect's temporary server
    assert proc.stdout.count(": Completed") == 20


def test_a_script_sends_its_run_to_prefect_before_it_exits_and_says_nothing(project):
    """A pipeline called from a plain script does not wait for Prefect's events (they are sent in the
    background, as Prefect's own are); what is still queued at exit, its task-run states and its data flow,
    is sent before the process ends, with no note on the console."""
    script = project / "script.py"
    script.write_text("from dbnd_prefect import run\nfrom steps import chain\n"
                      "print('value', run(chain, task_version='now').values)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project), str(REPO)]))
    proc = subprocess.run([sys.executable, str(script)], cwd=project, env=env, capture_output=True, text=True,
                          timeout=180)
    assert_quiet(proc)
    assert "value 20" in proc.stdout

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowFilter,
                                                FlowFilterName, FlowRunFilter, FlowRunFilterId)
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + 60  # the server records what it was sent asynchronously
    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["chain"])),
                                    sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        while True:
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            done = [t for t in task_runs if t.state is not None and t.state.name == "Completed"]
            if (len(done) == 20 and artifacts) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert len(done) == 20  # every task run's final state reached the server
    assert artifacts  # and so did the run's data flow
