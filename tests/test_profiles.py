"""Environment profiles: inheritance, mistakes named with the closest name, `dbnd show-env` provenance,
`dbnd run --env` applying the profile's task runner, data root and environment variables, and the refusal
of a local data root for work that runs off this machine."""

from __future__ import annotations

import os
import re
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd

PIPE = "tests.test_profiles.profile_probe_pipe"


# Calls that must run at the same time meet here: the barrier lets them through once all of them wait in it,
# each on its own thread, and breaks after 60 s otherwise (the task fails, and the test with it).
_meeting: dict[int, threading.Barrier] = {}


@task
def profile_probe(index: int, meeting: int = 0) -> dict:
    """What a user can see of the run's environment from inside a task."""
    if meeting:
        _meeting[meeting].wait()  # BrokenBarrierError: the pool did not run `meeting` calls at once
    return {"thread": threading.get_ident(), "greeting": os.environ.get("DBND_PROFILE_GREETING"), "index": index}


@task
def profile_reader(settings: dict) -> int:
    return len(settings)


@pipeline
def profile_probe_pipe(count: int = 3, meeting: int = 0):
    return [profile_probe(i, meeting) for i in range(count)]


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))


def project(workdir: Path, text: str) -> None:
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n' + textwrap.dedent(text), encoding="utf-8")


def line_of(workdir: Path, needle: str) -> int:
    lines = (workdir / "dbnd.toml").read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if needle in line)


def user_error(result: CmdResult, *expected: str) -> str:
    """Exit code 2 and exactly one line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def shown(result: CmdResult) -> dict[str, tuple[str, str]]:
    """`dbnd show-env` plain output: key -> (value, source)."""
    assert result.exit_code == 0, result
    rows = {}
    for line in result.stdout.splitlines()[1:-1]:
        key, value, source = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        rows[key] = (value, source)
    return rows


TEAM = """
[env.k8s_prod]
extends = "k8s"
data_root = "s3://team-bucket/root"
image = "team/pipelines:1"

[env.k8s_prod.task_runner]
type = "dask"
address = "tcp://dask-scheduler.internal:8786"

[env.team]
extends = "k8s_prod"
namespace = "team"
env = { DBND_PROFILE_GREETING = "hello", AWS_SECRET_ACCESS_KEY = "do-not-show-me" }
"""


def test_show_env_prints_the_profile_resolved_through_its_parents_with_each_source(workdir, monkeypatch):
    project(workdir, TEAM)
    monkeypatch.setenv("DBND__ENV__TEAM__SPARK__MASTER", "spark://spark.internal:7077")
    rows = shown(dbnd("show-env", "team", "--set", "env.team.job_variables.image_pull_policy=Always"))

    extends_line = line_of(workdir, 'extends = "k8s_prod"')
    assert rows["extends"] == ("k8s_prod -> k8s", f"project layer, dbnd.toml:{extends_line}")
    assert rows["work_pool.type"] == ("'kubernetes'", "built-in k8s")
    assert rows["work_pool.name"] == ("'k8s'", "built-in k8s")
    image_line = line_of(workdir, "image =")
    assert rows["image"] == ("'team/pipelines:1'", f"project layer, dbnd.toml:{image_line} (from env.k8s_prod)")
    assert rows["namespace"] == ("'team'", f"project layer, dbnd.toml:{line_of(workdir, 'namespace')}")
    assert rows["task_runner.type"][0] == "'dask'"
    assert rows["task_runner.address"][1].endswith("(from env.k8s_prod)")
    assert rows["data_root"][0] == "'s3://team-bucket/root'"
    assert rows["spark.master"] == ("'spark://spark.internal:7077'", "env layer, env DBND__ENV__TEAM__SPARK__MASTER")
    assert rows["job_variables.image_pull_policy"] == (
        "'Always'", "set layer, --set env.team.job_variables.image_pull_policy=Always")
    assert rows["env.AWS_SECRET_ACCESS_KEY"][0] == "'***'"
    result = dbnd("show-env", "team")
    assert "do-not-show-me" not in result.stdout
    assert result.stdout.splitlines()[-1] == "profiles: docker, k8s, k8s_prod, local, team"


def test_show_env_without_a_name_shows_the_active_profile_and_its_data_root_from_run(workdir):
    project(workdir, "")
    result = dbnd("show-env", "--env", "docker")
    rows = shown(result)
    assert result.stdout.splitlines()[0] == "env docker (active)"
    assert rows["work_pool.type"] == ("'docker'", "built-in docker")
    assert rows["data_root"] == ("'data'", "project layer, dbnd.toml:2 [run]")


@pytest.mark.parametrize("table, expected", [
    ('[env.prod]\nwork_poll = { type = "docker" }\n', ["unknown key env.prod.work_poll.type at dbnd.toml:4",
                                                       "did you mean 'work_pool'?"]),
    ('[env.prod]\nextends = "k8s_prd"\n[env.k8s_prod]\nextends = "k8s"\n',
     ["env.prod extends unknown environment 'k8s_prd' at dbnd.toml:4", "did you mean 'k8s_prod'?"]),
    ('[env.prod]\nextends = "stage"\n[env.stage]\nextends = "prod"\n',
     ["makes a cycle: prod -> stage -> prod"]),
    ('[env.prod.task_runner]\ntype = "dask"\nn_worker = 2\n',
     ["unknown key env.prod.task_runner.n_worker for a dask runner at dbnd.toml:5", "did you mean 'n_workers'?"]),
    ('[env.prod]\nextends = "k8s"\njob_variables = { namespce = "x" }\n',
     ["unknown job variable env.prod.job_variables.namespce", "did you mean 'namespace'?"]),
    ('[env.prod.work_pool]\ntype = "ecs"\n', ["invalid env.prod.work_pool.type = 'ecs' at dbnd.toml:4"]),
])
def test_a_profile_mistake_is_one_line_naming_the_key_and_the_closest_name(workdir, table, expected):
    project(workdir, table)
    user_error(dbnd("show-env", "prod"), *expected)
    # the same mistake stops a run in that profile before anything runs
    user_error(dbnd("run", PIPE, "--env", "prod"), *expected)
    assert not (workdir / "data").exists()


def test_an_unknown_profile_name_is_one_line_with_the_closest_name(workdir):
    project(workdir, "[env.staging]\ndata_root = \"stage\"\n")
    user_error(dbnd("show-env", "stagin"), "unknown environment 'stagin'", "did you mean 'staging'?")
    user_error(dbnd("run", PIPE, "--env", "stagin"), "unknown environment 'stagin'", "did you mean 'staging'?")


def test_run_with_env_uses_the_profiles_task_runner_data_root_and_environment_variables(workdir, monkeypatch):
    project(workdir, """
        [env.serial]
        data_root = "serial-data"
        task_runner = { type = "thread", max_workers = 1 }
        env = { DBND_PROFILE_GREETING = "hello" }
    """)
    monkeypatch.delenv("DBND_PROFILE_GREETING", raising=False)

    result = dbnd("run", PIPE, "--env", "serial")
    assert result.exit_code == 0, result
    values = [entry for entry in result.run.task_runs]
    assert [entry["state"] for entry in values] == ["Completed"] * 3
    outputs = [run_output(entry) for entry in values]
    assert {o["greeting"] for o in outputs} == {"hello"}
    assert len({o["thread"] for o in outputs}) == 1  # one worker thread: the profile's max_workers
    assert all(uri.startswith(str(workdir / "serial-data")) for entry in values for uri in entry["outputs"].values())
    assert "DBND_PROFILE_GREETING" not in os.environ  # set for the run only

    # the same pipeline in the default profile: the pipeline's own (bounded, parallel) pool, no variable; its
    # three calls meet, which they can only do on three threads at once
    _meeting[3] = threading.Barrier(3, timeout=60)
    result = dbnd("run", PIPE, "--set", "count=3", "--set", "meeting=3")
    assert result.exit_code == 0, result
    outputs = [run_output(entry) for entry in result.run.task_runs]
    assert {o["greeting"] for o in outputs} == {None}
    assert len({o["thread"] for o in outputs}) == 3


def run_output(entry: dict) -> dict:
    from dbnd_prefect.targets import Target

    return Target(entry["outputs"]["result"]).load("dict")


@pytest.mark.parametrize("table, why", [
    ('[env.cluster]\ntask_runner = { type = "dask", address = "tcp://10.255.0.1:8786" }\n',
     "its dask scheduler tcp://10.255.0.1:8786 is on another machine"),
    ('[env.cluster]\nextends = "k8s"\n', "its work pool 'k8s' is a kubernetes pool"),
])
def test_a_local_data_root_for_work_off_this_machine_is_refused_before_anything_runs(workdir, table, why):
    project(workdir, table)
    line = user_error(dbnd("run", PIPE, "--env", "cluster"), "environment 'cluster'", why,
                      f"data root '{workdir / 'data'}' is on this machine",
                      "use an s3://, gs:// or az:// data root or a remote storage block",
                      "env.cluster.data_root")
    assert line.startswith("dbnd: error: ")
    assert not (workdir / "data").exists()


def test_a_ray_runner_without_prefect_ray_is_one_line_naming_the_package(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # a user who has not installed it
    monkeypatch.delitem(sys.modules, "dbnd_prefect.engine.ray_runner", raising=False)
    project(workdir, '[env.ray]\ntask_runner = { type = "ray" }\n')
    user_error(dbnd("run", PIPE, "--env", "ray"), "env.ray.task_runner.type = 'ray' needs prefect-ray",
               "pip install prefect-ray")
    assert not (workdir / "data").exists()


def test_config_explain_takes_profile_keys_and_names_the_closest_one(workdir):
    project(workdir, '[env.prod.task_runner]\ntype = "dask"\naddress = "tcp://127.0.0.1:8786"\n')
    result = dbnd("config", "explain", "env.prod.task_runner.address")
    assert result.exit_code == 0, result
    assert result.stdout.splitlines()[:2] == ["env.prod.task_runner.address = 'tcp://127.0.0.1:8786'",
                                              "  set by: project layer, dbnd.toml:5"]
    user_error(dbnd("config", "explain", "env.prod.task_runner.adress"), "unknown key env.prod.task_runner.adress",
               "did you mean 'address'?")


def test_a_local_input_for_work_off_this_machine_is_refused_before_anything_runs(workdir):
    project(workdir, """
        [env.remote]
        data_root = "s3://team-bucket/root"
        task_runner = { type = "dask", address = "tcp://dask-scheduler.internal:8786" }
    """)
    (workdir / "settings.json").write_text('{"a": 1}')
    user_error(dbnd("run", "tests.test_profiles.profile_reader", "--env", "remote", "--set", "settings=settings.json"),
               "input profile_reader.settings = ", "settings.json' is on this machine",
               "environment 'remote' runs work off it (its dask scheduler tcp://dask-scheduler.internal:8786 is on "
               "another machine)", "--set profile_reader.settings=s3://")
    # the same input in the local profile runs
    result = dbnd("run", "tests.test_profiles.profile_reader", "--set", "settings=settings.json")
    assert result.exit_code == 0, result
