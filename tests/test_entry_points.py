"""One pipeline, every entry point: a script run stores the outputs, and every later run reuses them all.

The wine pipeline (`flows/wine_quality.py`) is copied into a fresh project and run as a script, then by
`dbnd run` three ways (dotted name, `-m` module + name, `file.py:func`), then as a Prefect deployment on a
real process worker. Each task's identity comes from its file in the project, not from the module name
Python gave it (`__main__`, `flows.wine_quality`, Prefect's loader), so every run after the first finds
the same signatures: every task is `Cached` and nothing new is written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.servers import stop_worker

BIN = Path(sys.executable).parent
TASKS = ("fetch_data", "split_data", "train_model", "validate_model")
PIPELINE = "predict_wine_quality"


def command(*args: str, cwd: Path, timeout: float = 240, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command as a user would, in the project (the package comes from the installed venv)."""
    full_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**full_env, **(env or {})})


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def wine_project(tmp_path: Path) -> Path:
    """The repository's `flows/` in a fresh project whose dbnd.toml puts the data in ./data."""
    project = tmp_path / "wine-project"
    shutil.copytree(REPO / "flows", project / "flows", ignore=shutil.ignore_patterns("data", "__pycache__"))
    (project / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    return project


@pytest.fixture
def process_pool(wine_project: Path):
    """A process work pool on the test server and a real `prefect worker` polling it (stopped after)."""
    pool = f"entry-points-{uuid.uuid4().hex[:8]}"
    ok(command(str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process", cwd=wine_project))
    log = (wine_project.parent / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool], cwd=wine_project, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
             "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"},
    )
    try:
        yield pool
    finally:
        stop_worker(worker)
        log.close()


def stored_outputs(project: Path) -> dict[str, tuple[int, int]]:
    """Every output and manifest file under the data root (not the run records), with size and mtime."""
    return {str(p.relative_to(project)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in (project / "data" / "local").rglob("*") if p.is_file()}


def run_records(project: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (project / "data" / ".dbnd" / "runs").glob("*.json")}


def new_record(project: Path, before: dict[str, dict]) -> dict:
    """The one run record written since `before`."""
    added = [record for run_id, record in run_records(project).items() if run_id not in before]
    assert len(added) == 1, sorted(run_records(project))
    return added[0]


def task_states(record: dict) -> dict[str, str]:
    return {entry["task"]: entry["state"] for entry in record["task_runs"]}


def summary_states(stdout: str) -> dict[str, str]:
    """Each task's state as the `dbnd run` summary prints it (`  fetch_data: Cached`)."""
    found = {}
    for line in stdout.splitlines():
        name, sep, state = line.strip().partition(": ")
        if line.startswith("  ") and not line.startswith("    ") and sep and name in TASKS:
            found[name] = state
    return found


def test_script_cli_and_deployment_runs_share_one_identity_per_task(wine_project, process_pool):
    project = wine_project
    records = run_records(project)
    ok(command(sys.executable, "flows/wine_quality.py", cwd=project))
    first = new_record(project, records)
    assert task_states(first) == {name: "Completed" for name in TASKS}
    outputs = stored_outputs(project)
    assert len([p for p in outputs if p.endswith("manifest.json")]) == len(TASKS)
    recorded_ids = {json.loads((project / p).read_text())["signature_parts"]["task"]
                    for p in outputs if p.endswith("manifest.json")}
    assert recorded_ids == {f"flows/wine_quality.py:{name}" for name in TASKS}  # not __main__.fetch_data

    all_cached = {name: "Cached" for name in TASKS}
    raw = "--set", "raw_data=flows/data/wine.csv"
    for how in ([f"flows.wine_quality.{PIPELINE}"], ["-m", "flows.wine_quality", PIPELINE],
                [f"flows/wine_quality.py:{PIPELINE}"]):
        records = run_records(project)
        stdout = ok(command(str(BIN / "dbnd"), "run", *how, *raw, cwd=project))
        assert summary_states(stdout) == all_cached, (how, stdout)
        assert task_states(new_record(project, records)) == all_cached, how
        assert stored_outputs(project) == outputs, how  # nothing written, nothing rewritten

    planned = command(str(BIN / "dbnd"), "plan", f"flows.wine_quality.{PIPELINE}", *raw, cwd=project,
                      env={"PYTHONPROFILEIMPORTTIME": "1"})
    plan = ok(planned)
    assert "would reuse 4 task run(s) and run 0" in plan, plan
    assert "code changed" not in plan
    # planning reads the definitions and the records only: it never pays for importing Prefect
    imported = {line.rsplit("|", 1)[1].strip() for line in planned.stderr.splitlines() if line.startswith("import time:")}
    assert "pandas" in imported and "prefect" not in imported

    (project / "prefect.yaml").write_text(json.dumps({  # YAML is a superset of JSON
        "name": "entry-points",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}],
        "deployments": [{"name": "wine", "entrypoint": f"flows/wine_quality.py:{PIPELINE}",
                         "parameters": {"raw_data": "flows/data/wine.csv"},
                         "work_pool": {"name": process_pool}}],
    }))
    ok(command(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=project))
    records = run_records(project)
    watched = ok(command(str(BIN / "prefect"), "deployment", "run", f"{PIPELINE}/wine", "--watch",
                         "--watch-timeout", "120", cwd=project, timeout=200))
    assert "Completed" in watched
    deployed = new_record(project, records)
    assert deployed["state"] == "Completed"
    assert task_states(deployed) == all_cached
    assert stored_outputs(project) == outputs

    # the script run's record names its tasks by identity: reproduce finds them with no -m and no module names
    report = ok(command(str(BIN / "dbnd"), "reproduce", first["flow_run_id"][:8], cwd=project))
    assert "5 of 5 output(s) match their recorded checksum" in report, report
