"""Whole scripts submitted as Databricks jobs (runs/submit) through prefect-databricks, against minilake.

minilake (PyPI, a local Databricks API emulator) runs on a free 127.0.0.1 port over HTTPS with a
self-signed certificate the DatabricksCredentials block trusts (`client_kwargs.verify`); it runs job
scripts as local subprocesses (no Spark, no Docker). See tests/minilake_server.py for the one thing it
is given: the Jobs API at version 2.1 (what prefect-databricks calls) as well as 2.2.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from dbnd_prefect.errors import ConfigError
from tests.conftest import REPO
from tests.servers import _die_with_parent, _log_tail, _stop_process, free_port

pytest.importorskip("prefect_databricks", reason="pip install prefect-databricks")
pytest.importorskip("minilake", reason="pip install minilake")

TOKEN = "dapi-minilake-" + uuid.uuid4().hex  # the block's token: must never show up anywhere

SCRIPT = """\
import sys

values = dict(arg.split("=", 1) for arg in sys.argv[2::2])
assert sys.argv[1::2] == ["--set"] * len(values), sys.argv
print("alpha", float(values["alpha"]) * 2)
print("names", values["names"])
"""


@contextlib.contextmanager
def running_minilake(home: Path, cluster_env: dict[str, str] | None = None) -> Iterator[tuple[int, Path]]:
    """minilake on a free 127.0.0.1 port (HTTPS), its data under `home`; (port, its certificate). Its jobs run
    as subprocesses of this interpreter with `cluster_env` added (what a cluster's instance profile gives)."""
    from minilake.tls import generate_self_signed

    cert, key = home / "cert.pem", home / "key.pem"
    generate_self_signed(cert, key, ["127.0.0.1"])
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MINILAKE_DATA_DIR": str(home / "data"),
           "MINILAKE_JOB_EXECUTOR": "subprocess", "MINILAKE_NOTEBOOK": "0",
           # job scripts run as `python3 SCRIPT`: this interpreter
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **(cluster_env or {})}
    log = home / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.minilake_server", str(port), str(cert), str(key)],
                                cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
        try:
            _wait_healthy(port, cert, proc, log)
            yield port, cert
        finally:
            _stop_process(proc)


@pytest.fixture(scope="module")
def minilake(tmp_path_factory) -> Iterator[tuple[int, Path]]:
    """minilake on a free 127.0.0.1 port (HTTPS); (port, its certificate). Stopped after the module."""
    with running_minilake(tmp_path_factory.mktemp("minilake")) as found:
        yield found


def _wait_healthy(port: int, cert: Path, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    context = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"minilake exited with code {proc.returncode}:\n{_log_tail(log)}", pytrace=False)
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/_minilake/health", timeout=2, context=context):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"minilake did not answer on 127.0.0.1:{port} within {timeout:.0f} s:\n{_log_tail(log)}",
                pytrace=False)


def save_block(port: int, cert: Path) -> str:
    from prefect_databricks import DatabricksCredentials

    name = f"minilake-{uuid.uuid4().hex[:12]}"
    DatabricksCredentials(databricks_instance=f"127.0.0.1:{port}", token=TOKEN,
                          client_kwargs={"verify": str(cert)}).save(name)
    return name


def write_config(workdir: Path, spark_table: str) -> None:
    from dbnd_prefect.config import reset_config_cache

    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[env.dbx.spark]\nengine = "databricks"\n'
                                       + textwrap.dedent(spark_table))
    reset_config_cache()


@pytest.fixture
def dbx(workdir: Path, minilake) -> Path:
    """A project whose profile `dbx` submits jobs to minilake's cluster `local-1`, polling every second."""
    port, cert = minilake
    block = save_block(port, cert)
    write_config(workdir, f'credentials_block = "{block}"\ncluster_id = "local-1"\npoll_seconds = 1\n'
                          'workspace_dir = "/Shared/dbnd-tests"\n')
    (workdir / "train.py").write_text(SCRIPT)
    return workdir


def test_a_script_runs_as_a_databricks_job_with_its_parameters_and_its_output_comes_back(dbx, minilake, capfd):
    from dbnd_prefect.spark.databricks_jobs import submit_script

    run = submit_script(dbx / "train.py", {"alpha": 0.3, "names": ["a", "b"]}, env="dbx")

    assert run.result_state == "SUCCESS"
    assert "alpha 0.6" in run.logs and 'names ["a", "b"]' in run.logs
    assert run.python_file.startswith("/Shared/dbnd-tests/train-") and run.python_file.endswith(".py")
    assert run.run_page_url and f"127.0.0.1:{minilake[0]}" in run.run_page_url
    # the same script again is the same workspace file; a changed one is another
    assert submit_script(dbx / "train.py", {"alpha": 1, "names": []}, env="dbx").python_file == run.python_file
    (dbx / "train.py").write_text(SCRIPT + "print('v2')\n")
    second = submit_script(dbx / "train.py", {"alpha": 1, "names": []}, env="dbx")
    assert second.python_file != run.python_file and "v2" in second.logs and second.run_id != run.run_id
    assert TOKEN not in capfd.readouterr().err


def test_the_token_is_not_in_the_prefect_flow_runs_parameters(dbx):
    from prefect import get_client

    from dbnd_prefect.spark.databricks_jobs import submit_script

    run_name = f"dbnd token check {uuid.uuid4().hex[:8]}"
    submit_script(dbx / "train.py", {"alpha": 2, "names": ["x"]}, env="dbx", run_name=run_name)
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:  # the newest runs: the server is shared with other tests
        flow_runs = [flow_run for flow_run in client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=200)
                     if flow_run.parameters.get("run_name") == run_name]
        # prefect-databricks' flow and its wait-for-completion subflow
        assert len(flow_runs) == 2 and all(flow_run.state.is_completed() for flow_run in flow_runs)
    assert all("databricks_credentials" in flow_run.parameters for flow_run in flow_runs)
    assert TOKEN not in repr([flow_run.parameters for flow_run in flow_runs])


def test_a_failing_script_is_one_error_naming_the_run_the_exit_and_its_last_line(dbx):
    from dbnd_prefect.spark.databricks_jobs import DatabricksRunFailed, submit_script

    (dbx / "broken.py").write_text("raise ValueError('alpha must be positive')\n")
    with pytest.raises(DatabricksRunFailed) as caught:
        submit_script(dbx / "broken.py", {"alpha": -1}, env="dbx", run_name="broken run")
    message = str(caught.value)
    assert message.startswith("Databricks run ") and "'broken run'" in message and "ended FAILED" in message
    assert "exited with code 1" in message and "ValueError: alpha must be positive" in message
    assert "\n" not in message and TOKEN not in message


def test_a_workspace_that_does_not_answer_is_one_config_error_without_the_token(workdir, minilake):
    from dbnd_prefect.spark.databricks_jobs import submit_script

    _, cert = minilake
    block = save_block(free_port(), cert)
    write_config(workdir, f'credentials_block = "{block}"\ncluster_id = "c-1"\n')
    (workdir / "train.py").write_text(SCRIPT)
    with pytest.raises(ConfigError) as caught:
        submit_script(workdir / "train.py", {"alpha": 1}, env="dbx")
    message = str(caught.value)
    assert message.startswith("Databricks job submission to 127.0.0.1:") and f"block '{block}'" in message
    assert "\n" not in message and TOKEN not in message


@pytest.mark.parametrize("table, expected", [
    ('cluster_id = "c-1"\nnew_cluster = { spark_version = "15.4.x-scala2.12" }\n',
     "env.dbx.spark sets both cluster_id and new_cluster"),
    ("", "env.dbx.spark names no cluster for Databricks jobs"),
    ('new_cluster = { spark_version = "15.4.x-scala2.12", num_workers = "many" }\n',
     "invalid env.dbx.spark.new_cluster.num_workers: Input should be a valid integer"),
    ('new_cluster = { spark_version = "15.4.x-scala2.12", num_worker = 2 }\n',
     "unknown key env.dbx.spark.new_cluster.num_worker; did you mean 'num_workers'?"),
    ('new_cluster = { num_workers = 2 }\n', "invalid env.dbx.spark.new_cluster.spark_version: Field required"),
    ('cluster_id = "c-1"\nlibraries = [{ pypi = { pakage = "x" } }]\n',
     "invalid env.dbx.spark.libraries.0.pypi.package: Field required"),
    ('cluster_id = "c-1"\nlibraries = [{ pypi = { package = "x", rep = "https://pypi.example" } }]\n',
     "unknown key env.dbx.spark.libraries.0.pypi.rep; did you mean 'repo'?"),
], ids=["two-clusters", "no-cluster", "type", "typo", "required", "library-required", "library-typo"])
def test_a_bad_job_setting_is_one_line_naming_the_key(workdir, table, expected):
    from dbnd_prefect.spark.databricks_jobs import build_task, databricks_settings

    write_config(workdir, 'credentials_block = "dbx"\n' + table)
    env, settings = databricks_settings("dbx")
    with pytest.raises(ConfigError) as caught:
        build_task(env, settings, "/Shared/x.py", [], "x")
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("table, expected", [
    ('workspace_dir = "Shared/x"\n', "invalid env.dbx.spark.workspace_dir at dbnd.toml:6: a Databricks workspace "
                                     "folder is an absolute path"),
    ('cluster_id = "c-1"\n', "env.dbx.spark.credentials_block is needed to submit Databricks jobs"),
    ('credentials_block = "b"\npoll_second = 5\n', "unknown key env.dbx.spark.poll_second for the databricks engine "
                                                   "at dbnd.toml:7; did you mean 'poll_seconds'?"),
], ids=["workspace-dir", "no-block", "key"])
def test_a_bad_databricks_table_is_one_line_when_the_profile_resolves(workdir, table, expected):
    from dbnd_prefect.spark.databricks_jobs import databricks_settings

    write_config(workdir, table)
    with pytest.raises(ConfigError) as caught:
        databricks_settings("dbx")
    assert str(caught.value).startswith(expected), str(caught.value)
    assert "\n" not in str(caught.value)


def test_another_engine_cannot_submit_jobs(workdir):
    from dbnd_prefect.config import reset_config_cache
    from dbnd_prefect.spark.databricks_jobs import databricks_settings

    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[env.dev.spark]\nengine = "local"\n')
    reset_config_cache()
    with pytest.raises(ConfigError, match=r"^environment 'dev' runs Spark engine 'local', not 'databricks'"):
        databricks_settings("dev")


def test_the_request_holds_the_new_cluster_libraries_and_set_arguments(workdir):
    from dbnd_prefect.spark.databricks_jobs import build_task, databricks_settings, script_arguments

    write_config(workdir, '''\
        credentials_block = "dbx"
        new_cluster = { spark_version = "15.4.x-scala2.12", node_type_id = "i3.xlarge", num_workers = 2, \
spark_conf = { "spark.speculation" = "true" }, data_security_mode = "SINGLE_USER" }
        libraries = [{ pypi = { package = "dbnd-prefect" } }, { maven = { coordinates = "io.delta:delta-spark_2.13:4.0.0" } }]
        ''')
    env, settings = databricks_settings("dbx")
    task = build_task(env, settings, "/Shared/dbnd-prefect/train-abc.py",
                      script_arguments({"alpha": 0.5, "name": "x y", "on": True}), "train")
    assert task.model_dump(mode="json", exclude_none=True) == {
        "task_key": "train",
        "new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2,
                        "spark_conf": {"spark.speculation": "true"},
                        "data_security_mode": "SINGLE_USER"},  # a key the models do not know is passed on
        "libraries": [{"pypi": {"package": "dbnd-prefect"}},
                      {"maven": {"coordinates": "io.delta:delta-spark_2.13:4.0.0"}}],
        "spark_python_task": {"python_file": "/Shared/dbnd-prefect/train-abc.py",
                              "parameters": ["--set", "alpha=0.5", "--set", "name=x y", "--set", "on=true"]},
    }


def test_a_credentials_block_that_is_not_saved_is_one_config_error(workdir):
    from dbnd_prefect.spark.databricks_jobs import submit_script

    write_config(workdir, 'credentials_block = "no-such-dbx-block"\ncluster_id = "c-1"\n')
    (workdir / "train.py").write_text(SCRIPT)
    with pytest.raises(ConfigError) as caught:
        submit_script(workdir / "train.py", {"alpha": 1}, env="dbx")
    assert str(caught.value).startswith("env.dbx.spark.credentials_block = 'no-such-dbx-block' cannot be loaded: ")
    assert "\n" not in str(caught.value)


def test_a_spark_session_asked_for_here_on_a_job_profile_is_one_line_saying_why(workdir):
    from dbnd_prefect.config import config_context
    from dbnd_prefect.spark import spark_session

    write_config(workdir, 'credentials_block = "dbx"\ncluster_id = "c-1"\n')
    with config_context({"run": {"env": "dbx"}}), pytest.raises(ConfigError) as caught:
        spark_session()
    message = str(caught.value)
    assert "sends Spark tasks (a Spark DataFrame parameter or output) to the cluster as jobs" in message
    assert 'tasks = "connect"' in caught.value.hint and "\n" not in message
