"""The Python `run()` API: configuration layers, results, outputs, and errors before and during a run."""

from __future__ import annotations

import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.api.results import RunResult
from dbnd_prefect.api.run import run
from dbnd_prefect.config import config_context
from dbnd_prefect.errors import ConfigError, DbndError, ParameterError, TargetError, TaskFailedError, TaskNotFoundError


@task(result="kept, dropped")
def api_filter(table: pd.DataFrame, threshold: int = 2, note: str = "none") -> tuple:
    return table[table["x"] >= threshold], table[table["x"] < threshold]


@task
def api_total(table: pd.DataFrame, scale: float = 1.0) -> dict:
    return {"total": float(table["x"].sum()) * scale}


@pipeline
def api_pipe(table: pd.DataFrame, threshold: int = 2):
    kept, _ = api_filter(table, threshold=threshold)  # threshold passed explicitly at the call site
    return api_total(kept)


@task
def api_nothing(flag: bool = False) -> int:
    return None  # type: ignore[return-value]


@task
def api_broken(n: int = 1) -> int:
    raise KeyError(f"row {n}")


@pytest.fixture
def table(workdir):
    path = workdir / "table.csv"
    pd.DataFrame({"x": [1, 2, 3, 4]}).to_csv(path, index=False)
    return path


def test_run_a_task_with_set_and_load_outputs(workdir, table):
    result = run(api_filter, set={"table": "table.csv", "api_filter.threshold": "3"})
    assert isinstance(result, RunResult)
    kept, dropped = result.values
    assert list(kept["x"]) == [3, 4] and list(dropped["x"]) == [1, 2]
    loaded = result.outputs("api_filter")
    assert list(loaded) == ["kept", "dropped"]
    assert list(loaded["kept"]["x"]) == [3, 4]
    assert result.task_run("api_filter")["state"] == "Completed"
    assert result.run.data_root == str(workdir / "data")


def test_run_by_name_with_override_beating_the_call_site(workdir, table):
    by_set = run("api_pipe", set={"table": str(table), "api_filter.threshold": 4})
    assert by_set.values == {"total": 9.0}  # the pipeline passes threshold=2 explicitly: --set loses
    by_override = run("api_pipe", set={"table": str(table)}, override={"api_filter.threshold": 4},
                      task_version="now")
    assert by_override.values == {"total": 4.0}
    assert by_override.outputs("api_total") == {"result": {"total": 4.0}}
    assert by_override.outputs("api_filter")["kept"]["x"].tolist() == [4]


def test_config_context_project_env_and_conf_files(workdir, table, monkeypatch):
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[api_total]\nscale = 2\n\n'
                                       '[env.alt]\ndata_root = "alt_data"\n')
    (workdir / "more.toml").write_text("[api_total]\nscale = 3\n")
    assert run(api_total, set={"table": "table.csv"}).values == {"total": 20.0}
    assert run(api_total, set={"table": "table.csv"}, conf_files=["more.toml"]).values == {"total": 30.0}
    monkeypatch.setenv("DBND__API_TOTAL__SCALE", "0.5")
    assert run(api_total, set={"table": "table.csv"}, conf_files=["more.toml"]).values == {"total": 5.0}
    alt = run(api_total, set={"table": "table.csv", "scale": 10}, env="alt")
    assert alt.values == {"total": 100.0}
    assert alt.run.env == "alt" and alt.run.data_root == str(workdir / "alt_data")
    # a call inside config_context picks its values up
    with config_context({"api_total.scale": 0.1}):
        assert api_total(str(table)) == pytest.approx({"total": 1.0})


def test_in_memory_dataframe_through_set(workdir):
    frame = pd.DataFrame({"x": [5, 6]})
    result = run(api_filter, set={"table": frame, "threshold": 6})
    assert result.outputs("api_filter")["kept"]["x"].tolist() == [6]


def test_none_output_is_none_when_loaded(workdir):
    result = run(api_nothing)
    assert result.values is None
    assert result.outputs("api_nothing") == {"result": None}


def test_outputs_of_a_task_that_did_not_run(workdir, table):
    result = run(api_total, set={"table": "table.csv"})
    with pytest.raises(DbndError, match=r"task 'api_totl' did not run in run \w+; did you mean 'api_total'\?"):
        result.outputs("api_totl")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(task="api_totl"), TaskNotFoundError, "unknown task or pipeline 'api_totl' (did you mean api_total"),
        (dict(task=api_total, set={"tabel": "x.csv"}), ParameterError,
         "unknown parameter 'tabel' of api_total in --set tabel=...; did you mean 'table'?"),
        (dict(task=api_total, set={"table": "missing.csv"}), TargetError,
         "input file not found: api_total.table = 'missing.csv'"),
        (dict(task=api_total, set={"table": "table.csv", "scale": "big"}), ParameterError,
         "parameter 'api_total.scale' expects a number, got 'big'"),
        (dict(task=api_pipe, set={"table": "table.csv"}, override={"api_filter.treshold": 1}), ConfigError,
         "unknown parameter api_filter.treshold at --override api_filter.treshold=1; did you mean 'threshold'?"),
        (dict(task=api_total, set={"table": "table.csv"}, env="staging"), ConfigError,
         "unknown environment 'staging' (from --env staging)"),
        (dict(task=api_total, conf_files=["nope.toml"]), ConfigError, "configuration file not found: nope.toml"),
        (dict(task=print), ConfigError, "is not a @task or @pipeline"),
    ],
)
def test_invalid_requests_fail_before_running(kwargs, error, message, workdir, table):
    task_arg = kwargs.pop("task")
    with pytest.raises(error) as caught:
        run(task_arg, **kwargs)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2
    assert not (workdir / "data").exists()


def test_failing_task_raises_task_failed_error_chained_to_the_cause(workdir):
    with pytest.raises(TaskFailedError) as caught:
        run(api_broken, set={"n": 5})
    assert str(caught.value) == ("task 'api_broken' failed: KeyError: 'row 5' "
                                 "(run with --verbose for the traceback)")
    assert caught.value.exit_code == 1
    assert isinstance(caught.value.__cause__, KeyError)
