"""A profile with a Dask scheduler address runs a pipeline's tasks on that cluster: a real `distributed`
scheduler and two worker processes on 127.0.0.1, outputs on an S3 data root (moto), reused by a second run."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.pytest_plugin import run_cmd
from tests.dask_cluster import DaskCluster, dask_cluster, running
from tests.servers import Server, s3_env

PIPE = "tests.test_dask_runner.dask_where_pipe"


@task
def dask_where(part: int) -> dict:
    """Which process and Dask worker ran this call."""
    from distributed import get_worker

    time.sleep(0.3)  # gives both workers a share
    return {"part": part, "pid": os.getpid(), "worker": get_worker().name}


@task
def dask_gather(places: list) -> dict:
    """Fan-in on a worker: the upstream outputs arrive as values."""
    from distributed import get_worker

    return {"parts": sorted(p["part"] for p in places), "worker": get_worker().name}


@pipeline
def dask_where_pipe(parts: int = 4):
    places = [dask_where(i) for i in range(parts)]
    return dask_gather(places)


@task
def dask_env_reader(part: int) -> dict:
    """What a task body on a worker sees of the profile's `env` table."""
    from distributed import get_worker

    return {"value": os.environ.get(WORKER_SETTING), "pid": os.getpid(), "worker": get_worker().name}


@pipeline
def dask_env_pipe(parts: int = 2):
    return [dask_env_reader(i) for i in range(parts)]


@pipeline
def dask_inner_pipe(first: dict, parts: int = 3):
    """A nested pipeline: it names no task runner, so its tasks run where its parent's do."""
    return dask_gather([first, *(dask_where(i) for i in range(1, parts))])


@pipeline
def dask_outer_pipe(parts: int = 3):
    return dask_inner_pipe(dask_where(0), parts)


WORKER_SETTING = "DBND_TEST_DASK_WORKER_SETTING"


@pytest.fixture(scope="module")
def cluster(s3_server: Server) -> Iterator[DaskCluster]:
    """Scheduler and two workers that reach the S3 emulator as the test process does."""
    env = s3_env(s3_server.url)
    with dask_cluster(env) as started:
        yield started
    assert not any(running(pid) for pid in started.pids), "a dask process outlived its fixture"


def project(workdir: Path, text: str) -> None:
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n' + textwrap.dedent(text), encoding="utf-8")


def loaded(uri: str) -> dict:
    from dbnd_prefect.targets import Target

    return Target(uri).load("dict")


@pytest.mark.slow  # ~30 s on the shared 2-core machine
def test_a_dask_profile_runs_the_tasks_on_the_cluster_workers_and_a_second_run_reuses_them(
        workdir, s3_bucket, cluster):
    project(workdir, f"""
        [env.cluster]
        data_root = "s3://{s3_bucket}/pipelines"
        task_runner = {{ type = "dask", address = "{cluster.address}" }}
    """)

    first = run_cmd(["run", PIPE, "--env", "cluster"])
    assert first.exit_code == 0, first
    assert "ERROR" not in first.stderr and "Traceback" not in first.stderr
    entries = first.run.task_runs
    assert [e["state"] for e in entries] == ["Completed"] * 5
    places = [loaded(e["outputs"]["result"]) for e in entries if e["task"] == "dask_where"]
    assert sorted(p["part"] for p in places) == [0, 1, 2, 3]
    assert {p["worker"] for p in places} <= set(cluster.workers)
    assert os.getpid() not in {p["pid"] for p in places}  # ran in the worker processes, not here
    gathered = loaded(next(e for e in entries if e["task"] == "dask_gather")["outputs"]["result"])
    assert gathered["parts"] == [0, 1, 2, 3] and gathered["worker"] in cluster.workers
    assert all(uri.startswith(f"s3://{s3_bucket}/pipelines/") for e in entries for uri in e["outputs"].values())

    second = run_cmd(["run", PIPE, "--env", "cluster"])
    assert second.exit_code == 0, second
    assert [e["state"] for e in second.run.task_runs] == ["Cached"] * 5
    assert [e["outputs"] for e in second.run.task_runs] == [e["outputs"] for e in entries]


def test_a_dask_profile_with_a_local_data_root_on_this_machine_runs(workdir, cluster):
    """A scheduler on 127.0.0.1 shares this machine's disk: a local root is accepted."""
    project(workdir, f"""
        [env.cluster]
        task_runner = {{ type = "dask", address = "{cluster.address}" }}
    """)
    result = run_cmd(["run", PIPE, "--env", "cluster", "--set", "parts=2"])
    assert result.exit_code == 0, result
    assert [e["state"] for e in result.run.task_runs] == ["Completed"] * 3
    assert all(uri.startswith(str(workdir / "data")) for e in result.run.task_runs for uri in e["outputs"].values())


@pytest.mark.slow  # ~30 s on the shared 2-core machine
def test_a_dask_profile_without_an_address_runs_the_tasks_on_a_local_cluster_it_starts_and_stops(workdir):
    import psutil

    project(workdir, """
        [env.local_dask]
        task_runner = { type = "dask", n_workers = 1, threads_per_worker = 2 }
    """)
    result = run_cmd(["run", PIPE, "--env", "local_dask", "--set", "parts=2"])
    assert result.exit_code == 0, result
    places = [loaded(e["outputs"]["result"]) for e in result.run.task_runs if e["task"] == "dask_where"]
    assert len(places) == 2 and os.getpid() not in {p["pid"] for p in places}  # in the cluster's worker process
    assert not any(psutil.pid_exists(p["pid"]) for p in places)  # the cluster ended with the run


def test_a_dask_profile_env_table_reaches_task_bodies_on_the_workers_and_leaves_with_them(workdir, cluster):
    from distributed import Client

    project(workdir, f"""
        [env.cluster]
        task_runner = {{ type = "dask", address = "{cluster.address}" }}
        env = {{ {WORKER_SETTING} = "from-profile" }}
    """)
    result = run_cmd(["run", "tests.test_dask_runner.dask_env_pipe", "--env", "cluster", "--set", "parts=3"])
    assert result.exit_code == 0, result
    seen = [loaded(e["outputs"]["result"]) for e in result.run.task_runs]
    assert [s["value"] for s in seen] == ["from-profile"] * 3
    assert os.getpid() not in {s["pid"] for s in seen} and {s["worker"] for s in seen} <= set(cluster.workers)
    with Client(cluster.address, timeout=10) as client:  # restored on the workers once the task bodies ended
        assert client.run(os.environ.get, WORKER_SETTING) == {address: None for address in client.run(os.getpid)}
    assert WORKER_SETTING not in os.environ


def test_a_nested_pipeline_runs_its_tasks_on_its_parents_dask_cluster(workdir, cluster):
    """Not on a thread pool of this process: the sub-pipeline's tasks land on the same workers, and its task
    waits on the parent's task it was given."""
    project(workdir, f"""
        [env.cluster]
        task_runner = {{ type = "dask", address = "{cluster.address}" }}
    """)
    result = run_cmd(["run", "tests.test_dask_runner.dask_outer_pipe", "--env", "cluster"])
    assert result.exit_code == 0, result
    assert "ERROR" not in result.stderr and "Traceback" not in result.stderr
    entries = result.run.task_runs
    assert sorted(e["task"] for e in entries) == ["dask_gather", *["dask_where"] * 3]
    assert {e["state"] for e in entries} == {"Completed"}
    places = [loaded(e["outputs"]["result"]) for e in entries if e["task"] == "dask_where"]
    assert sorted(p["part"] for p in places) == [0, 1, 2]
    assert os.getpid() not in {p["pid"] for p in places} and {p["worker"] for p in places} <= set(cluster.workers)
    gathered = loaded(next(e for e in entries if e["task"] == "dask_gather")["outputs"]["result"])
    assert gathered["parts"] == [0, 1, 2] and gathered["worker"] in cluster.workers
