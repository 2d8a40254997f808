"""Ctrl-C (SIGINT) and SIGTERM stop a run: its flow run is Cancelled on the Prefect server, no further task
starts, nothing is stored for the interrupted task, and the process exits 130 (143) saying so in one line.

Real processes and real signals: `dbnd run` and a plain Python script run a pipeline whose second task sleeps;
the test waits until that task's body is running (it writes a marker file), then sends the signal.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

DBND = Path(sys.executable).parent / "dbnd"
START_TIMEOUT = 120.0  # until the slow task's body runs (a busy machine, a cold import)
EXIT_TIMEOUT = 60.0  # from the signal to the process's end

STEPS = '''
import os
import time
from pathlib import Path

from dbnd_prefect import pipeline, task


@task
def first(n: int = 1) -> int:
    return n + 1


@task
def slow(n: int) -> int:
    Path("slow-running").write_text("running")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not Path("stop-slow").exists():
        time.sleep(0.1)
    return n


@task
def after(n: int) -> int:
    Path("after-ran").write_text("ran")
    return n


@pipeline
def slow_chain(n: int = 1):
    return after(slow(first(n)))


if __name__ == "__main__":
    slow_chain(1)
'''

LINE = re.compile(r"^dbnd: interrupted: flow run (\S+) cancelled$")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["steps"]\n')
    (tmp_path / "steps.py").write_text(STEPS)
    return tmp_path


def start(project: Path, *command: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    # as from a terminal: SIGINT at its default (a shell's background job, e.g. a CI step started with `&`,
    # inherits SIGINT ignored, and Python then honours the ignore)
    return subprocess.Popen(list(command), cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_marker(proc: subprocess.Popen, marker: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before its slow task started:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the slow task did not start within {START_TIMEOUT} s")
        time.sleep(0.1)


def interrupt(proc: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running {EXIT_TIMEOUT} s after the signal:\n{out}\n{err}")
    return proc.returncode, out, err


def flow_run_state(name: str) -> str:
    """The state of the flow run called `name`, as the Prefect server has it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    assert len(runs) == 1, runs
    return runs[0].state.type.value


def task_run_states(name: str) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        found = client.read_task_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return {run.name.rsplit("-", 1)[0]: run.state.type.value for run in found}


def nothing_stored_for_slow(project: Path) -> None:
    data = project / "data"
    manifests = [p for p in data.rglob("_manifest.json")] if data.exists() else []
    assert not [p for p in manifests if "slow" in p.parts], manifests  # no version of the interrupted task
    assert not [p for p in data.rglob("*") if "slow" in p.parts and p.is_file()] if data.exists() else True
    assert not (project / "after-ran").exists()  # no task started after the interrupt


def check_interrupted(project: Path, code: int, err: str, expected: int) -> None:
    lines = err.strip().splitlines()
    assert code == expected, err
    assert len(lines) == 1, err
    match = LINE.match(lines[0])
    assert match, lines
    assert flow_run_state(match.group(1)) == "CANCELLED"
    states = task_run_states(match.group(1))
    assert states.get("first") == "COMPLETED" and states.get("slow") == "CANCELLED", states
    assert states.get("after") in (None, "CANCELLED"), states  # submitted, waiting for slow: never ran
    nothing_stored_for_slow(project)


@pytest.mark.parametrize("signum, expected", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_dbnd_run_interrupted_cancels_the_flow_run(project: Path, signum: int, expected: int) -> None:
    proc = start(project, str(DBND), "run", "slow_chain")
    wait_for_marker(proc, project / "slow-running")
    code, out, err = interrupt(proc, signum)
    check_interrupted(project, code, err, expected)
    assert out == ""


@pytest.mark.parametrize("signum, expected", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_script_interrupted_cancels_the_flow_run(project: Path, signum: int, expected: int) -> None:
    proc = start(project, sys.executable, "steps.py")
    wait_for_marker(proc, project / "slow-running")
    code, _, err = interrupt(proc, signum)
    check_interrupted(project, code, err, expected)


def test_a_second_ctrl_c_exits_at_once(project: Path) -> None:
    """The first Ctrl-C waits (briefly) for the run to stop; a second one ends the process at once."""
    proc = start(project, str(DBND), "run", "slow_chain")
    wait_for_marker(proc, project / "slow-running")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("a second Ctrl-C did not end the process")
    assert proc.returncode == 130
    assert not (project / "after-ran").exists()


REMOTE = '''
from dbnd_prefect import pipeline, task


@task(task_env="idle")
def far(n: int = 1) -> int:
    return n


@pipeline
def remote_chain(n: int = 1):
    return far(n)
'''


def test_an_interrupt_cancels_the_task_env_run_it_submitted(tmp_path: Path) -> None:
    """A `task_env` task's run waits on a work pool no worker polls; Ctrl-C cancels it with the caller's run."""
    import uuid

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    pool, env_tag = f"idle-{uuid.uuid4().hex[:8]}", "env:idle"
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["remote_steps"]\n\n'
                                        f'[env.idle]\nwork_pool = {{ name = "{pool}" }}\n')
    (tmp_path / "remote_steps.py").write_text(REMOTE)
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    proc = start(tmp_path, str(DBND), "run", "remote_chain")
    deadline = time.monotonic() + START_TIMEOUT
    submitted = []
    while not submitted:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task_env run was not submitted"
        time.sleep(0.3)
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[env_tag])))
        submitted = [r for r in runs if r.work_pool_name == pool]
    code, out, err = interrupt(proc, signal.SIGINT)
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]), err
    assert flow_run_state(LINE.match(lines[0]).group(1)) == "CANCELLED"
    with get_client(sync_client=True) as client:
        remote = client.read_flow_run(submitted[0].id)
    assert remote.state.type.value == "CANCELLED", remote.state
