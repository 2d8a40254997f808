"""`dbnd deploy`: deployments from environment profiles, on a real Prefect server and process worker.

The profile names the work pool once; `dbnd deploy` writes a normal prefect.yaml entry (plain
`prefect deploy --all` redeploys it) and the deployed run uses the profile's data root and the
task-level parameters given with `--param`. A missing work pool, an unknown parameter or a local input
for a profile that runs off this machine is one line and exit 2, with nothing written or deployed; for
a remote profile with an S3 data root (moto) the input is uploaded there, content-addressed.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.test_deployments import BIN, PIPELINE, TASKS, deployment_run, manifest_of, process_worker, read_deployment
from tests.test_entry_points import command, ok

ENTRY = f"flows/wine_quality.py:{PIPELINE}"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with `flows/`, a `nightly` profile on a process pool with a worker, and an empty prefect.yaml
    directory; yields (project, pool)."""
    from flows.sample_data import ensure_wine_csv

    root = tmp_path_factory.mktemp("dbnd-deploy") / "project"
    shutil.copytree(REPO / "flows", root / "flows", ignore=shutil.ignore_patterns("data", "__pycache__"))
    ensure_wine_csv(root / "flows" / "data" / "wine.csv")
    pool = f"nightly-{uuid.uuid4().hex[:8]}"
    (root / "dbnd.toml").write_text(
        '[run]\ndata_root = "data"\n\n'
        f'[env.nightly]\nextends = "local"\ndata_root = "nightly-root"\nwork_pool = {{ name = "{pool}" }}\n'
        'env = { WINE_NOTE = "from the profile" }\n')
    with process_worker(pool, root):
        yield root, pool


def records(root: Path, data_root: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (root / data_root / ".dbnd" / "runs").glob("*.json")}


def test_dbnd_deploy_writes_prefect_yaml_and_the_run_uses_the_profile(project):
    root, pool = project
    out = ok(command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "nightly", "--param", "raw_data=flows/data/wine.csv",
                     "--param", "train_model.alpha=0.2", "--interval", "3600", cwd=root, timeout=300))
    name = f"{PIPELINE}/predict-wine-quality-nightly"
    assert f"deployed {name} (work pool {pool}, environment nightly)" in out, out

    entry = yaml.safe_load((root / "prefect.yaml").read_text())["deployments"][0]
    assert entry["entrypoint"] == ENTRY
    assert entry["parameters"] == {"raw_data": "flows/data/wine.csv", "train_model.alpha": 0.2}
    assert entry["work_pool"]["job_variables"]["env"] == {"WINE_NOTE": "from the profile", "DBND__RUN__ENV": "nightly"}
    deployment, _ = read_deployment(name)
    assert deployment.work_pool_name == pool
    assert deployment.enforce_parameter_schema
    assert deployment.parameter_openapi_schema["properties"]["train_model.alpha"]["type"] == "number"
    assert deployment.schedules[0].schedule.interval.total_seconds() == 3600

    watched = deployment_run(root, name, "train_model.l1_ratio=0.75")
    assert watched.returncode == 0 and "Completed" in watched.stdout, watched.stdout + watched.stderr
    (record,) = records(root, "nightly-root").values()  # the profile's root
    assert record["state"] == "Completed"
    assert {e["task"] for e in record["task_runs"]} == set(TASKS)
    assert manifest_of(record, "train_model")["parameters"] == {"alpha": 0.2, "l1_ratio": 0.75}
    assert "/nightly-" in manifest_of(record, "train_model")["outputs"]["result"]["uri"]

    # a second deploy updates the entry (no duplicate) and plain `prefect deploy --all` keeps working on it
    ok(command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "nightly", "--param", "train_model.alpha=0.1",
               "--write-only", cwd=root, timeout=300))
    spec = yaml.safe_load((root / "prefect.yaml").read_text())
    assert [d["name"] for d in spec["deployments"]] == ["predict-wine-quality-nightly"]
    assert spec["deployments"][0]["parameters"]["train_model.alpha"] == 0.1
    ok(command(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", cwd=root, env={"PWD": str(root)}))
    deployment, _ = read_deployment(name)
    assert deployment.parameters["train_model.alpha"] == 0.1


def test_missing_work_pool_is_one_line_and_exit_2_with_nothing_written(project, tmp_path):
    root, _ = project
    before = (root / "prefect.yaml").read_text() if (root / "prefect.yaml").exists() else None
    (root / "missing.toml").write_text('[env.gone]\nextends = "local"\nwork_pool = { name = "no-such-pool" }\n')
    proc = command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "gone", "--conf-file", "missing.toml", cwd=root)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "work pool 'no-such-pool'" in lines[0] and "prefect work-pool create" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    after = (root / "prefect.yaml").read_text() if (root / "prefect.yaml").exists() else None
    assert after == before


def test_unknown_or_bad_parameter_is_refused_before_anything_is_written(project):
    root, _ = project
    before = (root / "prefect.yaml").read_text() if (root / "prefect.yaml").exists() else None
    for param, expected in (("train_model.alpah=0.3", "did you mean 'train_model.alpha'"),
                            ("train_model.alpha=lots", "train_model.alpha")):
        proc = command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "nightly", "--param", param, cwd=root)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    after = (root / "prefect.yaml").read_text() if (root / "prefect.yaml").exists() else None
    assert after == before


def test_remote_profile_uploads_local_inputs_or_refuses_a_local_root(project, s3_bucket):
    root, _ = project
    pool = f"remote-{uuid.uuid4().hex[:8]}"
    ok(command(str(BIN / "prefect"), "work-pool", "create", pool, "--type", "docker", cwd=root))
    (root / "remote.toml").write_text(
        f'[env.remote]\nextends = "docker"\nwork_pool = {{ name = "{pool}", type = "docker" }}\n'
        f'data_root = "s3://{s3_bucket}/root"\n\n'
        f'[env.stranded]\nextends = "docker"\nwork_pool = {{ name = "{pool}", type = "docker" }}\n'
        'data_root = "local-data"\n')
    refused = command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "stranded", "--conf-file", "remote.toml",
                      "--param", "raw_data=flows/data/wine.csv", "--write-only", "--prefect-file", "remote.yaml",
                      cwd=root)
    assert refused.returncode == 2 and "environment 'stranded' runs work off this machine" in refused.stderr, \
        refused.stdout + refused.stderr
    assert not (root / "remote.yaml").exists()

    missing = command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "remote", "--conf-file", "remote.toml",
                      "--param", "raw_data=flows/data/nope.csv", "--write-only", "--prefect-file", "remote.yaml",
                      cwd=root)
    assert missing.returncode == 2 and "raw_data" in missing.stderr and "no such file" in missing.stderr
    assert not (root / "remote.yaml").exists()

    out = ok(command(str(BIN / "dbnd"), "deploy", ENTRY, "--env", "remote", "--conf-file", "remote.toml",
                     "--param", "raw_data=flows/data/wine.csv", "--write-only", "--prefect-file", "remote.yaml",
                     cwd=root))
    uri = yaml.safe_load((root / "remote.yaml").read_text())["deployments"][0]["parameters"]["raw_data"]
    assert uri.startswith(f"s3://{s3_bucket}/root/inputs/") and uri.endswith("/wine.csv"), uri
    assert f"uploaded raw_data to {uri}" in out

    import boto3

    from tests.servers import AWS_ACCESS_KEY_ID, AWS_REGION, AWS_SECRET_ACCESS_KEY

    import os

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=AWS_REGION,
                      aws_access_key_id=AWS_ACCESS_KEY_ID, aws_secret_access_key=AWS_SECRET_ACCESS_KEY)
    key = uri.removeprefix(f"s3://{s3_bucket}/")
    body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert body == (root / "flows" / "data" / "wine.csv").read_bytes()
