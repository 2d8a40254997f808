"""@task: a top-level call, how outputs are named and stored, and which signatures a task accepts."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from pathlib import Path
from typing import NamedTuple, Tuple

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.config import config_context
from dbnd_prefect.errors import ParameterError
from dbnd_prefect.context import last_run
from tests.sample_tasks import double, sample_frame, split3


@task(result="training_set, test_set")
def split_named(raw: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame]:
    half = len(raw) // 2
    return raw.iloc[:half], raw.iloc[half:]


@task(result=("low", "high"))
def split_dict(values: list) -> dict:
    return {"low": [v for v in values if v < 5], "high": [v for v in values if v >= 5]}


class Stats(NamedTuple):
    mean: float
    total: float


@task
def stats(frame: pd.DataFrame) -> Stats:
    return Stats(float(frame["x"].mean()), float(frame["x"].sum()))


def test_top_level_task_call_returns_real_value(workdir):
    assert double(21) == 42
    run = last_run()
    (entry,) = run.task_runs
    assert entry["task"] == "double" and entry["state"] == "Completed"
    stored = Path(entry["outputs"]["result"])
    assert stored.suffix == ".pkl" and pickle.loads(stored.read_bytes()) == 42


def test_unnamed_tuple_outputs_are_result_1_to_n(workdir):
    a, b, c = split3(sample_frame())
    assert [len(a), len(b), len(c)] == [3, 3, 3]
    outputs = last_run().task_runs[0]["outputs"]
    assert sorted(outputs) == ["result_1", "result_2", "result_3"]
    assert all(uri.endswith(".parquet") for uri in outputs.values())
    pd.testing.assert_frame_equal(pd.read_parquet(outputs["result_2"]), b)


def test_result_option_names_outputs(workdir):
    train, test = split_named(sample_frame(10))
    assert len(train) == 5 and len(test) == 5
    assert sorted(last_run().task_runs[0]["outputs"]) == ["test_set", "training_set"]


def test_dict_return_maps_to_named_outputs(workdir):
    low, high = split_dict([1, 7, 3, 9])
    assert low == [1, 3] and high == [7, 9]
    outputs = last_run().task_runs[0]["outputs"]
    assert json.loads(Path(outputs["high"]).read_text()) == [7, 9]


def test_namedtuple_annotation_names_outputs(workdir):
    result = stats(sample_frame(5))
    assert result == (2.0, 10.0)
    assert sorted(last_run().task_runs[0]["outputs"]) == ["mean", "total"]


def test_fn_gives_the_undecorated_function():
    assert double.func(5) == 10
    assert double.__name__ == "double"


def test_variadic_and_async_functions_are_refused_at_decoration():
    with pytest.raises(ParameterError, match=r"\*rest.*list or dict"):
        @task
        def varargs(a: int, *rest):
            return a

    with pytest.raises(ParameterError, match="async"):
        @task
        async def later(a: int) -> int:
            return a


@task
def posonly(a: int, /, b: int = 2) -> int:
    return a * b


@pipeline
def uses_posonly():
    return posonly(2, b=5)


def test_positional_only_parameters_work(workdir):
    assert posonly(3) == 6
    assert uses_posonly() == 10
    with config_context({"posonly.b": "4"}):
        assert posonly(3) == 12


@task
def metrics(n: int) -> dict:
    return {"count": np.int64(n), "mean": np.float64(1.5)}


@task
def awkward(n: int) -> dict:
    return {1: "a", "when": dt.date(2026, 1, n), "pair": (1, 2)}


def test_dict_outputs_stay_json_when_faithful_else_pickle(workdir):
    assert metrics(3) == {"count": 3, "mean": 1.5}
    uri = Path(last_run().task_runs[0]["outputs"]["result"])
    assert uri.suffix == ".json" and uri.read_text() == '{"count": 3, "mean": 1.5}'
    first = awkward(2)
    uri = Path(last_run().task_runs[0]["outputs"]["result"])
    assert uri.suffix == ".pkl" and pickle.loads(uri.read_bytes()) == first
    assert awkward(2) == first and last_run().task_runs[0]["state"] == "Cached"
