"""A profile's Kubernetes settings become the Job a real `KubernetesWorker` submits for a dbnd deployment.

No cluster runs here. The Job manifest is rendered offline (prefect-kubernetes' own rendering) from the pool's
base job template and the job variables of a project's `[env.k8s_prod]` profile (`dbnd_prefect.profiles`
through `dbnd_prefect.work_pools`); then a
deployment of the wine pipeline on a `kubernetes` pool is run through `prefect worker start --type kubernetes`
against `kmock` (tests/kmock_server.py, a Kubernetes API emulator served on 127.0.0.1), and the Job is read
back from that API. kmock runs no pods, so the flow run stays Pending after its Job is created.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from dbnd_prefect.config import load_config
from dbnd_prefect.errors import ConfigError
from dbnd_prefect.config.profiles import resolve_profile
from dbnd_prefect.work_pools import base_job_template, check_job_variables, job_variables
from tests.conftest import REPO
from tests.kmock_server import kmock_cluster
from tests.test_entry_points import BIN, PIPELINE, command, ok

NAMESPACE = "dbnd-pipelines"
IMAGE = "registry.example.com/dbnd/wine:1.4"
PROFILE_TOML = f"""\
[env.k8s_prod]
extends = "k8s"
image = "{IMAGE}"
namespace = "{NAMESPACE}"
service_account = "dbnd-runner"
cpu = "1500m"
memory = "2Gi"
volumes = ["wine-data:/mnt/wine:ro", "/var/cache/dbnd:/cache"]
data_root = "s3://dbnd-k8s/root"
env = {{ DBND__RUN__ENV = "k8s_prod", DBND__TRAIN_MODEL__ALPHA = 0.3 }}
"""


def container(manifest: dict) -> dict:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only


def env_of(manifest: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container(manifest)["env"]}


def assert_profile_job(manifest: dict, flow_run_id: str) -> None:
    """The Job carries every worker setting of `[env.k8s_prod]`, and runs the flow run `flow_run_id`."""
    pod = manifest["spec"]["template"]["spec"]
    assert manifest["kind"] == "Job"
    assert manifest["metadata"]["namespace"] == NAMESPACE
    assert container(manifest)["image"] == IMAGE
    assert container(manifest)["resources"] == {"requests": {"cpu": "1500m", "memory": "2Gi"},
                                                "limits": {"cpu": "1500m", "memory": "2Gi"}}
    assert pod["serviceAccountName"] == "dbnd-runner"
    env = env_of(manifest)
    assert env["DBND__RUN__ENV"] == "k8s_prod"
    assert env["DBND__TRAIN_MODEL__ALPHA"] == "0.3"
    assert env["PREFECT__FLOW_RUN_ID"] == flow_run_id
    assert env["PREFECT_API_URL"] == os.environ["PREFECT_API_URL"]
    assert pod["volumes"] == [
        {"name": "dbnd-volume-0", "persistentVolumeClaim": {"claimName": "wine-data"}},
        {"name": "dbnd-volume-1", "hostPath": {"path": "/var/cache/dbnd"}},
    ]
    assert container(manifest)["volumeMounts"] == [
        {"name": "dbnd-volume-0", "mountPath": "/mnt/wine", "readOnly": True},
        {"name": "dbnd-volume-1", "mountPath": "/cache", "readOnly": False},
    ]
    assert container(manifest)["args"] == ["prefect", "flow-run", "execute"]
    assert manifest["metadata"]["labels"]["prefect.io/flow-run-id"] == flow_run_id


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The repository's `flows/` in a fresh project whose `[env.k8s_prod]` profile extends the built-in `k8s`."""
    project = tmp_path / "k8s-project"
    shutil.copytree(REPO / "flows", project / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "dbnd.toml").write_text(PROFILE_TOML)
    return project


def profile_job_variables(project: Path) -> dict:
    return resolve_profile(load_config(project, environ={}), "k8s_prod").job_variables()


def test_profile_job_variables_render_into_the_kubernetes_job_manifest(project: Path):
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = base_job_template("kubernetes")
    variables = profile_job_variables(project)
    check_job_variables(template, variables)
    started = time.monotonic()
    configuration = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, variables))
    flow_run = FlowRun(id=uuid.uuid4(), name="rendered-run", flow_id=uuid.uuid4())
    configuration.prepare_for_flow_run(flow_run)
    print(f"\nJob manifest rendered in {time.monotonic() - started:.2f} s")
    assert_profile_job(configuration.job_manifest, str(flow_run.id))

    # Prefect's own template has no volumes: the check names the variable before anything is deployed
    from prefect_kubernetes.worker import KubernetesWorker

    with pytest.raises(ConfigError, match="profile 'k8s': the work pool's base job template has no job "
                                          "variable 'volume_mounts'"):
        check_job_variables(KubernetesWorker.get_default_base_job_template(), variables, where="profile 'k8s'")


def test_profile_settings_that_a_pool_type_cannot_use_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"profile 'local': 'namespace' does not apply to a process work pool "
                                          r"\(it is a setting of kubernetes pools\)"):
        job_variables("process", {"namespace": "x"}, where="profile 'local'")
    with pytest.raises(ConfigError, match="unknown work pool type 'kubernets'; did you mean 'kubernetes'"):
        job_variables("kubernets", {})
    with pytest.raises(ConfigError, match="unknown worker setting 'service_acount'; did you mean 'service_account'"):
        job_variables("kubernetes", {"service_acount": "x"})
    with pytest.raises(ConfigError, match="memory '2 gigs' is not a memory amount"):
        job_variables("docker", {"memory": "2 gigs"})
    with pytest.raises(ConfigError, match="volume 'data' is not"):
        job_variables("kubernetes", {"volumes": ["data"]})
    with pytest.raises(ConfigError, match="env 'TOKEN' must be a string") as refused:
        job_variables("docker", {"env": {"TOKEN": {"secret": "s3cr3t-value"}}})
    assert "s3cr3t" not in str(refused.value)  # an env value may be a credential: never echoed

    refused = command(sys.executable, "-m", "dbnd_prefect.work_pools", "kubernets", cwd=REPO)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == ("error: unknown work pool type 'kubernets'; did you mean 'kubernetes'? "
                              "(one of: process, docker, kubernetes)\n")


@pytest.mark.slow
def test_kubernetes_worker_submits_the_profile_job_to_the_cluster(project: Path):
    pool = f"k8s-{uuid.uuid4().hex[:8]}"
    template_file = project.parent / "template.json"  # as the README shows: the template with volumes
    template_file.write_text(ok(command(sys.executable, "-m", "dbnd_prefect.work_pools", "kubernetes", cwd=project)))
    ok(command(str(BIN / "prefect"), "work-pool", "create", pool, "--type", "kubernetes",
               "--base-job-template", str(template_file), cwd=project))
    (project / "prefect.yaml").write_text(json.dumps({  # YAML is a superset of JSON
        "name": "k8s-pool",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "/opt/dbnd-project"}}],
        "deployments": [{"name": "wine-k8s", "entrypoint": f"flows/wine_quality.py:{PIPELINE}",
                         "parameters": {"raw_data": "flows/data/wine.csv"},
                         "work_pool": {"name": pool, "job_variables": profile_job_variables(project)}}],
    }))
    ok(command(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=project))
    created = ok(command(str(BIN / "prefect"), "deployment", "run", f"{PIPELINE}/wine-k8s", cwd=project))
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", created)[1]

    with kmock_cluster(project.parent) as cluster:
        started = time.monotonic()
        worker = command(str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "kubernetes",
                         "--run-once", cwd=project, timeout=120,
                         env={"KUBECONFIG": str(cluster.kubeconfig_path),
                              "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED": "false",
                              "PREFECT_WORKER_PREFETCH_SECONDS": "5"})
        seconds = time.monotonic() - started
        assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
        with urllib.request.urlopen(f"{cluster.url}/apis/batch/v1/namespaces/{NAMESPACE}/jobs", timeout=10) as r:
            jobs = json.load(r)["items"]
    print(f"\nworker process started, submitted and exited in {seconds:.1f} s")
    assert len(jobs) == 1, jobs
    assert_profile_job(jobs[0], flow_run_id)

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(uuid.UUID(flow_run_id))
    assert flow_run.state.type.value == "PENDING"  # submitted ("Submitting"); kmock starts no pod to run it
    assert jobs[0]["metadata"]["generateName"] == f"{flow_run.name}-"
    assert flow_run.infrastructure_pid and flow_run.infrastructure_pid.startswith(f"{NAMESPACE}:")
