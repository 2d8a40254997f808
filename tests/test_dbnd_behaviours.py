"""Behaviours DBND users rely on (issue #15, the decorator and parameter items): the reference's
option spellings, parameter types, mapping fingerprints and reuse inside task bodies."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import pytest
from pandas import DataFrame

from dbnd_prefect import DbndError, pipeline, run, task
from dbnd_prefect.config import config_context
from dbnd_prefect.pytest_plugin import run_cmd
from dbnd_prefect.context import last_run

inner_calls: list[int] = []


@task
def beh_inner(x: int) -> int:
    inner_calls.append(x)
    return x * 2


@task
def beh_outer(x: int) -> int:
    return beh_inner(x) + beh_inner(x)


def test_a_task_body_calling_a_task_twice_with_the_same_inputs_runs_it_once(workdir):
    inner_calls.clear()
    assert beh_outer(3) == 12
    assert inner_calls == [3], "the second call has the first call's signature: its outputs serve it"


@task
def beh_split(frame: DataFrame) -> (DataFrame, DataFrame):
    return frame.head(1), frame.tail(1)


@task(result="only,")
def beh_one_output(n: int) -> tuple:
    return (n, n)


def test_a_tuple_literal_return_annotation_names_outputs_like_tuple(workdir):
    assert [o.name for o in beh_split.outputs] == ["result_1", "result_2"]
    first, last = beh_split(pd.DataFrame({"a": [1, 2, 3]}))
    assert first["a"].tolist() == [1] and last["a"].tolist() == [3]
    written = last_run().task_runs[0]["outputs"]
    assert sorted(written) == ["result_1", "result_2"] and written["result_1"].endswith(".parquet")


def test_a_trailing_comma_in_result_is_one_output(workdir):
    assert [o.name for o in beh_one_output.outputs] == ["only"]
    assert beh_one_output(2) == (2, 2)


def test_a_pipeline_names_its_outputs_and_unknown_options_are_clear_errors():
    @pipeline(result=("train", "test"))
    def beh_named_pipeline(n: int):
        return n, n + 1

    assert beh_named_pipeline.result_names == ["train", "test"]
    with pytest.raises(DbndError, match=r"unknown option 'retires'; did you mean 'retries'"):
        task(retires=2)(lambda x: x)
    with pytest.raises(DbndError, match=r"@pipeline beh_bad: unknown option 'reslt'; did you mean 'result'"):
        @pipeline(reslt="a")
        def beh_bad(n: int):
            return n


@task
def beh_defaults(n=0, ratio=0.5, flag=False, every=dt.timedelta(hours=1)) -> dict:
    return {"n": n, "ratio": ratio, "flag": flag, "every": every.total_seconds()}


@task
def beh_duration(every: dt.timedelta) -> float:
    return every.total_seconds()


@pytest.mark.parametrize("text, seconds", [("5d", 432000.0), ("1h30m", 5400.0), ("P1DT2H", 93600.0),
                                           ("PT30M", 1800.0), ("2w 1d", 1296000.0), ("250ms", 0.25)])
def test_timedelta_parameters_take_compact_and_iso_durations(workdir, text, seconds):
    assert run(beh_duration, set={"every": text}).values == seconds


def test_unannotated_parameters_take_their_type_from_the_default(workdir):
    result = run(beh_defaults, set={"n": "1", "ratio": "0.25", "flag": "yes", "every": "2h"})
    assert result.values == {"n": 1, "ratio": 0.25, "flag": True, "every": 7200.0}
    with pytest.raises(DbndError, match=r"parameter 'beh_defaults.n' expects an integer, got 'x'"):
        run(beh_defaults, set={"n": "x"})


def test_a_bad_duration_is_one_clear_line_from_the_cli(workdir):
    result = run_cmd(["run", "tests.test_dbnd_behaviours.beh_duration", "--set", "every=soon"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "expects a duration (5d, 1h30m, 90s or ISO 8601 like P1DT2H), got 'soon'" in result.stderr


@task
def beh_mapping(options: dict) -> int:
    inner_calls.append(len(options))
    return len(options)


def test_equal_mappings_give_one_signature_whatever_their_type_or_order(workdir):
    inner_calls.clear()
    beh_mapping({"a": 1, "b": 2})
    beh_mapping(OrderedDict([("b", 2), ("a", 1)]))
    assert inner_calls == [2] and last_run().task_runs[0]["state"] == "Cached"


def test_set_in_section_form_works_on_the_cli(workdir):
    result = run_cmd(["run", "tests.test_dbnd_behaviours.beh_defaults",
                      "--set", '{"beh_defaults": {"n": 7, "every": "1m"}}'])
    assert result.exit_code == 0, result.stderr
    assert result.run is not None
    stored = pd.read_json(Path(result.run.task_runs[0]["outputs"]["result"]), typ="series")
    assert stored["n"] == 7 and stored["every"] == 60.0


def test_run_inside_config_context_honours_the_context(workdir):
    with config_context({"beh_defaults.n": "5"}):
        assert beh_defaults()["n"] == 5
        assert run(beh_defaults).values["n"] == 5
        assert run(beh_defaults, set={"n": "6"}).values["n"] == 6, "run's own set beats the context"


@task
def beh_versioned(x: int) -> int:
    inner_calls.append(x)
    return x + 1


@pipeline
def beh_call_site_options(x: int):
    a = beh_versioned(x)
    b = beh_versioned(x, task_version="2", task_name="second_version")
    c = beh_versioned(x, override={"x": 10})
    return a, b, c


def test_call_site_options_version_name_and_override_a_call(workdir):
    inner_calls.clear()
    assert beh_call_site_options(1) == (2, 2, 11)
    assert sorted(inner_calls) == [1, 1, 10], "task_version='2' is another signature: it ran again"
    runs = last_run().task_runs
    assert len({e["signature"] for e in runs}) == 3
    with pytest.raises(DbndError, match=r"override=\.\.\.\): unknown parameter 'y'"):
        beh_versioned(1, override={"y": 2})


@task
def beh_daily(n: int) -> int:
    inner_calls.append(n)
    return n


def test_task_target_date_partitions_outputs_and_signatures(workdir):
    inner_calls.clear()
    beh_daily(1, task_target_date="2024-01-30")
    beh_daily(1, task_target_date=dt.date(2024, 1, 31))
    beh_daily(1, task_target_date="2024-01-31")
    assert inner_calls == [1, 1], "each day is its own signature; the same day is reused"
    assert "/2024-01-31/beh_daily/" in last_run().task_runs[0]["outputs"]["result"]
    result = run_cmd(["run", "tests.test_dbnd_behaviours.beh_daily", "--set", "n=1",
                      "--set", "run.task_target_date=2024-01-30"])
    assert result.exit_code == 0 and result.run.task_runs[0]["state"] == "Cached"
    with pytest.raises(DbndError, match=r"task_target_date expects an ISO date \(YYYY-MM-DD\), got 'yesterday'"):
        beh_daily(1, task_target_date="yesterday")


@task(result="training_set, real_data")
def beh_prepare(n: int) -> tuple:
    return pd.DataFrame({"a": range(n)}), pd.DataFrame({"b": range(n)})


def test_run_results_load_outputs_by_name(workdir):
    result = beh_prepare.run(3)
    assert result.load("training_set")["a"].tolist() == [0, 1, 2]
    assert result.load("beh_prepare.real_data")["b"].tolist() == [0, 1, 2]
    assert set(result.task_outputs["beh_prepare"]) == {"training_set", "real_data"}
    with pytest.raises(DbndError, match=r"no output 'training' in this run; did you mean 'training_set'"):
        result.load("training")


# ----- output parameters: files a task writes itself (item 13) -----

from typing import Annotated  # noqa: E402

from dbnd_prefect import Output  # noqa: E402


@task
def beh_write_model(n: int, model_file: Annotated[Path, Output(".bin")]) -> None:
    inner_calls.append(n)
    model_file.write_bytes(bytes(range(n)))


@task
def beh_read_model(model: Path) -> int:
    return len(model.read_bytes())


@pipeline
def beh_model_pipeline(n: int):
    return beh_read_model(beh_write_model(n))


def test_a_file_the_task_writes_is_stored_versioned_and_reused(workdir):
    inner_calls.clear()
    path = beh_write_model(5)
    assert path.name == "model_file.bin" and path.read_bytes() == bytes(range(5))
    assert str(workdir / "data") in str(path), "the file lives in the run's output folder"
    manifest = pd.read_json(Path(last_run().task_runs[0]["manifest"]), typ="series")
    assert manifest["outputs"]["model_file"]["bytes"] == 5
    assert beh_model_pipeline(5) == 5
    assert inner_calls == [5], "the file was reused by the pipeline's call (same signature)"
    assert beh_model_pipeline(7) == 7 and inner_calls == [5, 7]


@task
def beh_forgets_file(model_file: Annotated[Path, Output()]) -> None:
    return None


def test_an_output_file_the_task_did_not_write_is_a_clear_error(workdir):
    with pytest.raises(DbndError, match=r"did not write its output file 'model_file'"):
        beh_forgets_file()
    assert not any((workdir / "data").rglob("model_file")), "nothing half-written"
