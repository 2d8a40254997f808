"""A `ray` profile runs a pipeline's tasks in Ray workers: a real Ray head node on 127.0.0.1 (`ray start`, every
port free; tests/ray_cluster.py) with outputs on an S3 data root (moto), reused by a second run; the profile's
`env` table reaches the task bodies; without an address a local Ray is started for the run and ended with it."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.pytest_plugin import run_cmd
from tests.ray_cluster import HERMETIC, RayCluster, ray_cluster, ray_processes
from tests.servers import Server, s3_env

SETTING = "DBND_TEST_RAY_SETTING"


@task
def ray_where(part: int) -> dict:
    """Which process and Ray worker ran this call, and what it saw of the profile's `env` table."""
    import ray

    return {"part": part, "pid": os.getpid(), "worker": ray.get_runtime_context().get_worker_id(),
            "node": ray.get_runtime_context().get_node_id(), "setting": os.environ.get(SETTING)}


@task
def ray_gather(places: list) -> dict:
    """Fan-in in a worker: the upstream outputs arrive as values."""
    import ray

    return {"parts": sorted(p["part"] for p in places), "worker": ray.get_runtime_context().get_worker_id()}


@pipeline
def ray_pipe(parts: int = 4):
    return ray_gather([ray_where(i) for i in range(parts)])


PIPE = "tests.test_ray_runner.ray_pipe"


@pytest.fixture(autouse=True)
def hermetic_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in HERMETIC.items():  # this process is the Ray driver
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def cluster(s3_server: Server) -> Iterator[RayCluster]:
    """A head node whose workers reach the S3 emulator as the test process does."""
    env = s3_env(s3_server.url)
    with ray_cluster(env) as started:
        yield started
    assert ray_processes(started.folder) == [], "a Ray process outlived its fixture"


def project(workdir: Path, text: str) -> None:
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n' + textwrap.dedent(text), encoding="utf-8")


def loaded(uri: str) -> dict:
    from dbnd_prefect.targets import Target

    return Target(uri).load("dict")


@pytest.mark.slow  # a Ray head node: ~10 s to start on the shared 2-core machine
def test_a_ray_profile_runs_the_tasks_in_ray_workers_on_s3_and_a_second_run_reuses_them(workdir, s3_bucket, cluster):
    project(workdir, f"""
        [env.ray]
        data_root = "s3://{s3_bucket}/pipelines"
        task_runner = {{ type = "ray", address = "{cluster.address}" }}
        env = {{ {SETTING} = "from-profile" }}
    """)
    first = run_cmd(["run", PIPE, "--env", "ray"])
    assert first.exit_code == 0, first
    assert "ERROR" not in first.stderr and "Traceback" not in first.stderr
    entries = first.run.task_runs
    assert [e["state"] for e in entries] == ["Completed"] * 5
    assert all(uri.startswith(f"s3://{s3_bucket}/pipelines/") for e in entries for uri in e["outputs"].values())
    places = [loaded(e["outputs"]["result"]) for e in entries if e["task"] == "ray_where"]
    assert sorted(p["part"] for p in places) == [0, 1, 2, 3]
    assert os.getpid() not in {p["pid"] for p in places}  # in Ray's worker processes, not here
    assert all(p["worker"] and p["node"] for p in places)
    assert {p["setting"] for p in places} == {"from-profile"}  # the profile's env table, in the task bodies
    assert SETTING not in os.environ
    gathered = loaded(next(e for e in entries if e["task"] == "ray_gather")["outputs"]["result"])
    assert gathered["parts"] == [0, 1, 2, 3] and gathered["worker"]

    second = run_cmd(["run", PIPE, "--env", "ray"])
    assert second.exit_code == 0, second
    assert [e["state"] for e in second.run.task_runs] == ["Cached"] * 5
    assert [e["outputs"] for e in second.run.task_runs] == [e["outputs"] for e in entries]


@pytest.mark.slow
def test_a_ray_profile_without_an_address_starts_a_local_ray_for_the_run_and_ends_it(workdir):
    import psutil

    project(workdir, """
        [env.local_ray]
        task_runner = { type = "ray", init_kwargs = { num_cpus = 2, include_dashboard = false } }
    """)
    result = run_cmd(["run", PIPE, "--env", "local_ray", "--set", "parts=2"])
    assert result.exit_code == 0, result
    assert [e["state"] for e in result.run.task_runs] == ["Completed"] * 3
    places = [loaded(e["outputs"]["result"]) for e in result.run.task_runs if e["task"] == "ray_where"]
    assert len(places) == 2 and os.getpid() not in {p["pid"] for p in places}
    deadline = time.monotonic() + 60  # Ray ends its workers asynchronously once the run has shut it down
    while any(psutil.pid_exists(p["pid"]) for p in places) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(psutil.pid_exists(p["pid"]) for p in places)  # the local Ray ended with the run


def test_a_ray_profile_with_an_unknown_key_is_one_line(workdir):
    project(workdir, """
        [env.ray]
        task_runner = { type = "ray", adress = "127.0.0.1:6379" }
    """)
    result = run_cmd(["run", PIPE, "--env", "ray"])
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "adress" in result.stderr, result.stderr
