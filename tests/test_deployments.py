"""Deployments of pipelines on a real Prefect server, process work pool and `prefect worker`.

The repository's `prefect.yaml` is copied into a fresh project with the `flows/` pipelines and deployed
with plain `prefect deploy --all` (schema enforcement on). Runs started with pipeline- and task-level
`--param` overrides use them (their manifests say so) and write to the profile's data root; their
outputs are reused by `dbnd run` with the same settings and the other way round; the schedule produces
upcoming runs; a value of the wrong type is refused with the parameter's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.conftest import REPO
from tests.servers import stop_worker
from tests.test_entry_points import command, ok

BIN = Path(sys.executable).parent
PIPELINE = "predict_wine_quality"
TASKS = ("fetch_data", "split_data", "train_model", "validate_model")


DATED = """\
import datetime

from dbnd_prefect import pipeline, task


@task
def stamp(day: datetime.date = datetime.date(2026, 1, 1)) -> str:
    return day.isoformat()


@pipeline
def dated():
    return stamp()


@task
def partition(task_target_date: datetime.date) -> str:
    return f"rows of {task_target_date.isoformat()}"


@pipeline
def daily():
    return partition()
"""


@contextlib.contextmanager
def process_worker(pool: str, cwd: Path) -> Iterator[None]:
    """A process work pool on the test server and a real `prefect worker` polling it (stopped after)."""
    ok(command(str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process", cwd=cwd))
    log = (cwd.parent / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", pool], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                                     "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"})
    try:
        yield
    finally:
        stop_worker(worker)
        log.close()


@dataclasses.dataclass
class Deployed:
    project: Path
    pool: str
    spec: dict

    @property
    def scheduled(self) -> str:
        return f"{PIPELINE}/" + next(d["name"] for d in self.spec["deployments"] if d.get("schedules"))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[Deployed]:
    """The repository's prefect.yaml deployed with plain `prefect deploy --all` from a fresh project holding
    `flows/` (and a date-typed pipeline), on a process pool with a worker. The `local` profile keeps data in
    ./local-root. The docker deployment is left out here (its pool needs an engine: test_docker_worker.py)."""
    from flows.sample_data import ensure_wine_csv

    project = tmp_path_factory.mktemp("deployments") / "wine-project"
    shutil.copytree(REPO / "flows", project / "flows", ignore=shutil.ignore_patterns("data", "__pycache__"))
    ensure_wine_csv(project / "flows" / "data" / "wine.csv")
    (project / "flows" / "dated.py").write_text(DATED)
    (project / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[env.local]\ndata_root = "local-root"\n')
    pool = f"deployments-{uuid.uuid4().hex[:8]}"
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    spec["deployments"] = [d for d in spec["deployments"] if d["work_pool"]["name"] != "docker"]
    spec["deployments"].append({"name": "dated", "entrypoint": "flows/dated.py:dated", "work_pool": {"name": "local"}})
    spec["deployments"].append({"name": "daily", "entrypoint": "flows/dated.py:daily", "work_pool": {"name": "local"},
                                "schedules": [{"cron": "0 6 * * *", "timezone": "UTC"}]})
    for deployment in spec["deployments"]:
        deployment["work_pool"]["name"] = pool
    (project / "prefect.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with process_worker(pool, project):
        ok(command(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=project, env={"PWD": str(project)}))
        yield Deployed(project, pool, spec)


def run_records(project: Path, root: str = "local-root") -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (project / root / ".dbnd" / "runs").glob("*.json")}


def new_record(project: Path, before: dict[str, dict]) -> dict:
    added = [record for run_id, record in run_records(project).items() if run_id not in before]
    assert len(added) == 1, sorted(run_records(project))
    return added[0]


def task_entry(record: dict, task: str) -> dict:
    return next(entry for entry in record["task_runs"] if entry["task"] == task)


def manifest_of(record: dict, task: str) -> dict:
    path = task_entry(record, task)["manifest"]
    return json.loads(Path(path.removeprefix("file://")).read_text())


def deployment_run(project: Path, name: str, *params: str, timeout: float = 200):
    args = [a for p in params for a in ("--param", p)]
    return command(str(BIN / "prefect"), "deployment", "run", name, *args, "--watch", "--watch-timeout", "150",
                   cwd=project, timeout=timeout)


def read_deployment(name: str):
    from prefect.client.orchestration import get_client

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    async def read():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(name)
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                sort=FlowRunSort.START_TIME_DESC, limit=200)
            return deployment, runs

    return asyncio.run(read())


def ui_form_errors(schema: dict, values: dict) -> list:
    """What the Prefect UI's run form is told about `values` (POST /ui/schemas/validate, as the UI calls it)."""
    import httpx

    response = httpx.post(f"{os.environ['PREFECT_API_URL']}/ui/schemas/validate",
                          json={"schema": schema, "values": values}, timeout=30)
    response.raise_for_status()
    return response.json()["errors"]


def test_repo_prefect_yaml_deploys_with_task_parameters_in_its_schema_and_schedule(deployed):
    deployment, _ = read_deployment(deployed.scheduled)
    assert deployment.enforce_parameter_schema is True
    properties = deployment.parameter_openapi_schema["properties"]
    assert properties["raw_data"]["type"] == "string"
    assert "path or URI" in properties["raw_data"]["description"]
    assert properties["train_model.alpha"]["type"] == "number"
    assert properties["train_model.alpha"]["default"] == 0.5
    assert "train_model" in properties["train_model.alpha"]["description"]
    assert properties["split_data.validation_fraction"]["default"] == 0.25
    assert "validate_model.model" not in properties  # wired from train_model's output: nothing to set
    assert deployment.parameters["train_model.alpha"] == 0.3  # from prefect.yaml `parameters:`

    # the UI's run form validates its values with the server's schema endpoint before creating the run
    schema = deployment.parameter_openapi_schema
    assert ui_form_errors(schema, {"raw_data": "flows/data/wine.csv", "train_model.alpha": 0.75}) == []
    errors = ui_form_errors(schema, {"raw_data": "flows/data/wine.csv", "train_model.alpha": "lots"})
    assert any("train_model.alpha" in json.dumps(e) for e in errors), errors

    # the schedule produces upcoming runs (the server's scheduler picks up a new deployment within seconds)
    deadline = time.monotonic() + 60
    upcoming = []
    while time.monotonic() < deadline and not upcoming:
        _, runs = read_deployment(deployed.scheduled)
        upcoming = [r for r in runs if r.state_type.value == "SCHEDULED"]
        time.sleep(1)
    assert upcoming, "no scheduled runs for the scheduled deployment"
    assert all(r.expected_start_time.timestamp() > time.time() for r in upcoming)
    assert {r.expected_start_time.hour for r in upcoming} == {6}  # cron "0 6 * * *" UTC
    assert all(r.parameters["train_model.alpha"] == 0.3 for r in upcoming)


def test_deployment_run_uses_pipeline_and_task_parameters_and_shares_outputs_with_cli(deployed):
    project, name = deployed.project, deployed.scheduled
    (project / "flows" / "data" / "wine-copy.csv").write_bytes((project / "flows" / "data" / "wine.csv").read_bytes())

    records = run_records(project)
    watched = deployment_run(project, name, "raw_data=flows/data/wine-copy.csv", "train_model.alpha=0.125",
                             "split_data.validation_fraction=0.4")
    assert watched.returncode == 0 and "Completed" in watched.stdout, watched.stdout + watched.stderr
    deployed_run = new_record(project, records)  # in the local profile's root, not ./data
    assert not (project / "data").exists()
    assert deployed_run["state"] == "Completed"
    assert {e["task"]: e["state"] for e in deployed_run["task_runs"]} == {t: "Completed" for t in TASKS}
    assert manifest_of(deployed_run, "train_model")["parameters"]["alpha"] == 0.125
    assert manifest_of(deployed_run, "split_data")["parameters"]["validation_fraction"] == 0.4
    assert "/local-root/" in task_entry(deployed_run, "train_model")["manifest"]

    # `dbnd run` with the same settings reuses every output of the deployed run...
    records = run_records(project)
    ok(command(str(BIN / "dbnd"), "run", f"flows/wine_quality.py:{PIPELINE}", "--set",
               "raw_data=flows/data/wine-copy.csv", "--set", "train_model.alpha=0.125",
               "--set", "split_data.validation_fraction=0.4", cwd=project))
    cli = new_record(project, records)
    assert {e["task"]: e["state"] for e in cli["task_runs"]} == {t: "Cached" for t in TASKS}

    # ... and a deployed run reuses what `dbnd run` stored (a task-level value given only there)
    ok(command(str(BIN / "dbnd"), "run", f"flows/wine_quality.py:{PIPELINE}", "--set",
               "raw_data=flows/data/wine-copy.csv", "--set", "train_model.l1_ratio=0.25", cwd=project))
    records = run_records(project)
    watched = deployment_run(project, name, "raw_data=flows/data/wine-copy.csv", "train_model.l1_ratio=0.25",
                             "train_model.alpha=0.5")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    again = new_record(project, records)
    assert {e["task"]: e["state"] for e in again["task_runs"]} == {t: "Cached" for t in TASKS}
    assert manifest_of(again, "train_model")["parameters"] == {"alpha": 0.5, "l1_ratio": 0.25}


def test_bad_task_parameter_is_refused_naming_it(deployed):
    project, name = deployed.project, deployed.scheduled
    _, before = read_deployment(name)
    refused = deployment_run(project, name, "train_model.alpha=lots")  # schema enforcement: nothing runs
    assert refused.returncode != 0
    assert "train_model.alpha" in refused.stdout and "Traceback" not in refused.stdout + refused.stderr

    unknown = deployment_run(project, name, "train_model.alpah=0.3")
    assert unknown.returncode != 0 and "train_model.alpah" in unknown.stdout
    _, after = read_deployment(name)
    assert {r.id for r in after} == {r.id for r in before}  # no run was created


def test_value_that_passes_the_schema_but_not_the_task_type_fails_the_run_with_one_message(deployed):
    """A date-typed task parameter: the schema takes any text; the flow run fails naming the parameter."""
    project = deployed.project
    records = run_records(project)
    failed = deployment_run(project, "dated/dated", "stamp.day=not-a-date")
    assert "Failed" in failed.stdout, failed.stdout
    _, runs = read_deployment("dated/dated")
    message = runs[0].state.message  # the one run of the deployment
    assert "stamp.day" in message and "not-a-date" in message and "ISO date" in message, message
    assert run_records(project) == records  # nothing ran
    assert "Traceback" not in (project.parent / "worker.log").read_text()

    worked = deployment_run(project, "dated/dated", "stamp.day=2026-11-29")
    assert "Completed" in worked.stdout, worked.stdout + worked.stderr
    done = new_record(project, records)
    assert manifest_of(done, "stamp")["parameters"]["day"] == "2026-11-29"


def test_a_daily_schedule_gives_each_run_its_scheduled_date_as_target_date(deployed):
    """Runs the schedule creates (here for three past days, through Prefect's own `POST /deployments/{id}/
    schedule`, which the worker runs at once) each get their scheduled date as task_target_date: one partition
    per day; a run started by hand keeps the usual target date (none set: today's run date)."""
    import datetime as dt

    import httpx

    project = deployed.project
    deployment, _ = read_deployment("daily/daily")
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    records = run_records(project)
    response = httpx.post(f"{os.environ['PREFECT_API_URL']}/deployments/{deployment.id}/schedule",
                          json={"start_time": (today - dt.timedelta(days=3)).isoformat(),
                                "end_time": (today - dt.timedelta(hours=1)).isoformat()}, timeout=30)
    response.raise_for_status()
    days = [(today - dt.timedelta(days=n)).date().isoformat() for n in (3, 2, 1)]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        _, runs = read_deployment("daily/daily")
        past = [r for r in runs if r.expected_start_time.timestamp() < time.time() and r.auto_scheduled]
        if len(past) == 3 and all(r.state is not None and r.state.is_final() for r in past):
            break
        time.sleep(1)
    assert sorted(r.expected_start_time.date().isoformat() for r in past) == days
    assert all(r.state.is_completed() for r in past), [(r.name, r.state.message) for r in past]
    added = [record for run_id, record in run_records(project).items() if run_id not in records]
    assert sorted(manifest_of(record, "partition")["parameters"]["task_target_date"] for record in added) == days
    assert len({task_entry(record, "partition")["manifest"] for record in added}) == 3  # one partition per day

    by_hand = deployment_run(project, "daily/daily")
    assert "Completed" in by_hand.stdout, by_hand.stdout + by_hand.stderr
    manual = [record for run_id, record in run_records(project).items()
              if run_id not in records and record not in added]
    assert len(manual) == 1
    assert manifest_of(manual[0], "partition")["parameters"]["task_target_date"] == dt.date.today().isoformat()


def test_backfill_through_a_deployment_runs_each_date_on_its_work_pool_then_reuses(deployed):
    """`dbnd backfill --deployment`: one run of the deployment per date (the worker runs them), each with its
    date; a second backfill of the range reuses every date; a wrong deployment name is one line, exit 2."""
    project = deployed.project
    records = run_records(project)
    dbnd = str(BIN / "dbnd")
    args = ["backfill", "flows/dated.py:daily", "--task-target-date", "2024-06-01..2024-06-03",
            "--deployment", "daily", "--max-parallel", "2"]
    first = command(dbnd, *args, cwd=project, timeout=400)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = first.stdout.strip().splitlines()
    assert "3 date(s), 3 ran, 0 reused, 0 failed" in lines[0], first.stdout
    assert [line.split()[:2] for line in lines[1:]] == [["2024-06-01", "ran"], ["2024-06-02", "ran"],
                                                        ["2024-06-03", "ran"]]
    added = [record for run_id, record in run_records(project).items() if run_id not in records]
    assert sorted(manifest_of(record, "partition")["parameters"]["task_target_date"] for record in added) == [
        "2024-06-01", "2024-06-02", "2024-06-03"]  # written by the worker's runs, in the profile's root

    again = command(dbnd, *args, cwd=project, timeout=400)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 date(s), 0 ran, 3 reused, 0 failed" in again.stdout.splitlines()[0], again.stdout

    wrong = command(dbnd, *args[:-4], "--deployment", "nightly-typo", cwd=project, timeout=120)
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr.strip() == ("dbnd: error: deployment 'daily/nightly-typo' does not exist on the Prefect "
                                    "server (see `prefect deployment ls`; give FLOW/DEPLOYMENT)")
