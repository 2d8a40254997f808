"""A dbnd pipeline deployed on a Docker work pool runs to completion in a container, and the CLI reuses its outputs.

A private `dockerd` (tests/docker_engine.py) serves a real `prefect worker --type docker`; the pool's job
variables come from the project's `[env.docker]` profile (`dbnd_prefect.profiles` through
`dbnd_prefect.work_pools`). The container sees the project read-only and the profile's data root read-write,
both bind-mounted at their host paths; the profile's `env` (`DBND__RUN__ENV=docker`) selects the same profile
in the container. Skipped, with the reason, only where the Docker engine cannot start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from dbnd_prefect.config import load_config
from dbnd_prefect.config.profiles import resolve_profile
from dbnd_prefect.work_pools import base_job_template, check_job_variables, job_variables
from tests.conftest import REPO
from tests.servers import stop_worker
from tests.docker_engine import docker_engine, python_image, python_mounts
from tests.test_entry_points import BIN, PIPELINE, TASKS, command, ok, summary_states, task_states

@pytest.fixture(scope="module")
def engine():
    with docker_engine() as running:
        yield running


@pytest.fixture(scope="module")
def image(engine) -> str:
    tag, seconds = python_image(engine)
    print(f"\ndockerd answered in {engine.started_in:.1f} s; image imported in {seconds:.1f} s")
    return tag


@pytest.fixture
def project(tmp_path: Path, image: str) -> Path:
    """The repository's `flows/` in a fresh project whose `[env.docker]` profile runs on a Docker pool.

    The profile's data root is a folder beside the project, bind-mounted read-write at its host path; the
    project itself is mounted read-only, so whatever a run writes can only go to the data root.
    """
    from flows.sample_data import ensure_wine_csv

    project = tmp_path / "docker-project"
    shutil.copytree(REPO / "flows", project / "flows", ignore=shutil.ignore_patterns("data", "__pycache__"))
    ensure_wine_csv(project / "flows" / "data" / "wine.csv")  # the sample data the examples make for themselves
    data_root = tmp_path / "shared-data"
    data_root.mkdir()
    volumes = [*python_mounts(), f"{project}:{project}:ro", f"{data_root}:{data_root}"]
    (project / "dbnd.toml").write_text(f"""\
[run]
data_root = "data"

[env.docker]
data_root = {json.dumps(str(data_root))}
image = {json.dumps(image)}
memory = "2Gi"
cpu = 1.5
volumes = {json.dumps(volumes)}
env = {{ DBND__RUN__ENV = "docker" }}
# no registry to pull from, and the Prefect server listens on the host's 127.0.0.1
job_variables = {{ image_pull_policy = "Never", network_mode = "host" }}
""")
    return project


def stop(worker: subprocess.Popen) -> None:
    stop_worker(worker, timeout=15)


def outputs_under(root: Path) -> dict[str, tuple[int, int]]:
    """Every output and manifest file under a data root (not the run records), with size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and ".dbnd" not in p.relative_to(root).parts}


def records_under(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / ".dbnd" / "runs").glob("*.json"))]


def test_docker_profile_settings_become_the_containers_limits_mounts_and_env():
    variables = job_variables("docker", {
        "image": "me/flows:1", "cpu": "500m", "memory": "1G", "env": {"DEBUG": True, "N": 3},
        "volumes": ["/srv/data:/data", "/srv/in:/in:ro"], "job_variables": {"network_mode": "host"}})
    assert variables == {
        "image": "me/flows:1", "env": {"DEBUG": "true", "N": "3"},
        "container_create_kwargs": {"nano_cpus": 500_000_000},
        "mem_limit": "1000000000b",  # Docker's "g" is GiB: a decimal 1G is given in bytes
        "volumes": ["/srv/data:/data", "/srv/in:/in:ro"], "network_mode": "host"}
    assert job_variables("docker", {"memory": "512Mi"})["mem_limit"] == "512m"
    check_job_variables(base_job_template("docker"), variables)


@pytest.mark.slow
def test_docker_pool_runs_a_pipeline_in_a_container_and_the_cli_reuses_its_outputs(engine, image, project):
    data_root = project.parent / "shared-data"
    profile = resolve_profile(load_config(project, environ={}), "docker")
    variables = profile.job_variables()
    assert variables["image"] == image and variables["mem_limit"] == "2g"
    assert variables["env"] == {"DBND__RUN__ENV": "docker"}
    template = base_job_template("docker")
    check_job_variables(template, variables)

    pool = f"docker-{uuid.uuid4().hex[:8]}"
    template_file = project.parent / "template.json"
    template_file.write_text(json.dumps(template))
    ok(command(str(BIN / "prefect"), "work-pool", "create", pool, "--type", "docker",
               "--base-job-template", str(template_file), cwd=project))
    (project / "prefect.yaml").write_text(json.dumps({  # YAML is a superset of JSON
        "name": "docker-pool",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": str(project)}}],
        "deployments": [{"name": "wine-docker", "entrypoint": f"flows/wine_quality.py:{PIPELINE}",
                         "parameters": {"raw_data": "flows/data/wine.csv"},
                         "work_pool": {"name": pool, "job_variables": variables}}],
    }))
    ok(command(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=project))

    log_path = project.parent / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "docker"], cwd=project,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "DOCKER_HOST": engine.host,
                 "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"})
    try:
        started = time.monotonic()
        watched = command(str(BIN / "prefect"), "deployment", "run", f"{PIPELINE}/wine-docker", "--watch",
                          "--watch-timeout", "180", cwd=project, timeout=240)
        seconds = time.monotonic() - started
    finally:
        stop(worker)
    worker_log = log_path.read_text(errors="replace")
    assert watched.returncode == 0 and "Completed" in watched.stdout, (
        f"{watched.stdout[-2000:]}\n{watched.stderr[-2000:]}\nworker log:\n{worker_log[-4000:]}")
    print(f"deployment run to completion in a container: {seconds:.1f} s")

    # the run happened in the container: its outputs and run record are in the profile's data root,
    # and nothing was written into the (read-only) project
    (deployed,) = records_under(data_root)
    assert deployed["state"] == "Completed"
    assert task_states(deployed) == {name: "Completed" for name in TASKS}
    outputs = outputs_under(data_root)
    manifests = [p for p in outputs if p.endswith("manifest.json")]
    assert len(manifests) == len(TASKS)
    assert all(p.startswith("docker/") for p in outputs), outputs  # the layout names the run's environment
    assert not (project / "data").exists()
    containers = engine.client().containers.list(all=True)
    assert [c.image.tags for c in containers] == [[image]], containers
    host_config = containers[0].attrs["HostConfig"]
    assert (host_config["Memory"], host_config["NanoCpus"]) == (2 * 2**30, 1_500_000_000)  # the profile's limits
    state = containers[0].attrs["State"]
    assert state["ExitCode"] == 0
    print(f"the container itself ran from {state['StartedAt']} to {state['FinishedAt']}")

    # a later CLI run on the host with the same data root reuses every output and writes none
    stdout = ok(command(str(BIN / "dbnd"), "run", f"flows.wine_quality.{PIPELINE}", "--env", "docker",
                        "--set", "raw_data=flows/data/wine.csv", cwd=project))
    assert summary_states(stdout) == {name: "Cached" for name in TASKS}, stdout
    assert outputs_under(data_root) == outputs
    assert len(records_under(data_root)) == 2
