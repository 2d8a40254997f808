"""@task and @pipeline on a real Prefect server: values, naming, wiring, nesting, concurrency."""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path
from typing import NamedTuple, Tuple

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.run_context import last_run


@task
def double(x: int) -> int:
    return x * 2


@task
def split3(raw: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    n = len(raw) // 3
    return raw.iloc[:n], raw.iloc[n:2 * n], raw.iloc[2 * n:]


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


def _frame(n: int = 9) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype="int64"), "y": [f"s{i}" for i in range(n)]})


def test_top_level_task_call_returns_real_value(workdir):
    assert double(21) == 42
    run = last_run()
    (entry,) = run.task_runs
    assert entry["task"] == "double" and entry["state"] == "Completed"
    stored = Path(entry["outputs"]["result"])
    assert stored.suffix == ".pkl" and pickle.loads(stored.read_bytes()) == 42


def test_unnamed_tuple_outputs_are_result_1_to_n(workdir):
    a, b, c = split3(_frame())
    assert [len(a), len(b), len(c)] == [3, 3, 3]
    outputs = last_run().task_runs[0]["outputs"]
    assert sorted(outputs) == ["result_1", "result_2", "result_3"]
    assert all(uri.endswith(".parquet") for uri in outputs.values())
    pd.testing.assert_frame_equal(pd.read_parquet(outputs["result_2"]), b)


def test_result_option_names_outputs(workdir):
    train, test = split_named(_frame(10))
    assert len(train) == 5 and len(test) == 5
    assert sorted(last_run().task_runs[0]["outputs"]) == ["test_set", "training_set"]


def test_dict_return_maps_to_named_outputs(workdir):
    low, high = split_dict([1, 7, 3, 9])
    assert low == [1, 3] and high == [7, 9]
    outputs = last_run().task_runs[0]["outputs"]
    assert json.loads(Path(outputs["high"]).read_text()) == [7, 9]


def test_namedtuple_annotation_names_outputs(workdir):
    result = stats(_frame(5))
    assert result == (2.0, 10.0)
    assert sorted(last_run().task_runs[0]["outputs"]) == ["mean", "total"]


def test_fn_gives_the_undecorated_function():
    assert double.func(5) == 10
    assert double.__name__ == "double"


@task
def make_frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n)})


_seen_ids: dict[str, int] = {}


@task
def remember_identity(frame: pd.DataFrame) -> int:
    _seen_ids["frame"] = id(frame)
    return len(frame)


@task
def make_and_remember(n: int) -> pd.DataFrame:
    frame = pd.DataFrame({"x": np.arange(n)})
    _seen_ids["made"] = id(frame)
    return frame


@pipeline
def in_memory_pipeline(n: int = 4):
    frame = make_and_remember(n)
    return remember_identity(frame)


def test_outputs_pass_in_memory_between_tasks(workdir):
    assert in_memory_pipeline() == 4
    assert _seen_ids["frame"] == _seen_ids["made"], "downstream task got a copy read back from storage"


_flow_runs: dict[str, tuple] = {}


@pipeline
def inner_pipeline(frame: pd.DataFrame, factor: int = 3):
    from prefect.runtime import flow_run

    _flow_runs["inner"] = (flow_run.flow_name, flow_run.parent_flow_run_id)
    a, b, c = split3(frame)
    return double(factor), a


@pipeline
def outer_pipeline(n: int = 9):
    from prefect.runtime import flow_run

    _flow_runs["outer"] = (flow_run.flow_name, flow_run.id)
    frame = make_frame(n)
    doubled, first = inner_pipeline(frame)
    return doubled, len(first)


def test_nested_pipeline_is_a_subflow(workdir):
    assert outer_pipeline() == (6, 3)
    assert _flow_runs["outer"][0] == "outer_pipeline"
    assert _flow_runs["inner"] == ("inner_pipeline", _flow_runs["outer"][1])


_intervals: list[tuple[float, float]] = []
_lock = threading.Lock()


@task
def slow(label: str, seconds: float = 0.6) -> str:
    start = time.monotonic()
    time.sleep(seconds)
    with _lock:
        _intervals.append((start, time.monotonic()))
    return label


@pipeline
def two_branches():
    return slow("a"), slow("b")


def test_independent_branches_run_concurrently(workdir):
    _intervals.clear()
    assert two_branches() == ("a", "b")
    (s1, e1), (s2, e2) = sorted(_intervals)
    assert s2 < e1, f"branches did not overlap: {(s1, e1)} then {(s2, e2)}"


def test_pipeline_called_with_a_path_loads_it(workdir):
    _frame(6).to_csv(workdir / "in.csv", index=False)
    first, second, third = split3("in.csv")
    assert list(first["y"]) == ["s0", "s1"]


def test_pipeline_called_with_in_memory_frame(workdir):
    frame = pd.DataFrame({"x": np.arange(300_000)})
    assert remember_identity(frame) == 300_000
    assert _seen_ids["frame"] == id(frame), "the in-memory frame was copied through the flow parameters"


_threads: set[str] = set()


@task(versioned=False)
def note_thread(i: int, seconds: float = 0.02) -> int:
    time.sleep(seconds)
    with _lock:
        _threads.add(threading.current_thread().name)
    return i


def _wide(n: int):
    return [note_thread(i) for i in range(n)]


def test_a_wide_pipeline_runs_on_a_bounded_thread_pool(workdir):
    import os

    wide = pipeline(_wide, name="wide")
    _threads.clear()
    assert wide(40) == list(range(40))
    bound = min(32, (os.cpu_count() or 1) + 4)
    assert 2 <= len(_threads) <= bound, f"{len(_threads)} threads for 40 tasks (bound {bound})"


def test_the_thread_pool_follows_prefects_setting_and_an_explicit_task_runner(workdir):
    from prefect.settings import PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS, temporary_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    with temporary_settings({PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS: 2}):
        wide = pipeline(_wide, name="wide_by_setting")
    _threads.clear()
    assert wide(12) == list(range(12))
    assert len(_threads) == 2

    wide = pipeline(_wide, name="wide_by_runner", task_runner=ThreadPoolTaskRunner(max_workers=3))
    _threads.clear()
    assert wide(12) == list(range(12))
    assert len(_threads) == 3


@task
def scale_by(x: int, factor: int, label: str = "n") -> str:
    return f"{label}{x * factor}"


@task
def numbers(n: int) -> list:
    return list(range(n))


@pipeline
def mapped(xs: list, factor: int = 10):
    from prefect import unmapped

    direct = scale_by.map(xs, factor=unmapped(factor), label="a")  # a str is passed whole, like Prefect does
    over_upstream = scale_by.map(numbers(3), [1, 2, 3])
    return direct, over_upstream


def test_map_calls_the_task_once_per_element(workdir):
    direct, over_upstream = mapped([1, 2, 3])
    assert direct == ["a10", "a20", "a30"]
    assert over_upstream == ["n0", "n2", "n6"]  # the upstream list, zipped with the literal one
    states = [e["state"] for e in last_run().task_runs if e["task"] == "scale_by"]
    assert states == ["Completed"] * 6


@pipeline
def mismatched():
    return scale_by.map([1, 2, 3], [1, 2])


@pipeline
def nothing_to_map():
    return scale_by.map(2, 3)


def test_map_mistakes_are_clear_errors(workdir):
    from dbnd_prefect.errors import ParameterError

    with pytest.raises(ParameterError, match=r"scale_by.map\(\): iterable arguments differ in length \(x=3, factor=2\)"):
        mismatched()
    with pytest.raises(ParameterError, match=r"scale_by.map\(\) got no iterable argument"):
        nothing_to_map()
    with pytest.raises(ParameterError, match=r"scale_by.map\(\) works inside a @pipeline body only"):
        scale_by.map([1, 2], 3)


def test_plan_maps_over_known_lists_and_refuses_upstream_ones(workdir):
    from dbnd_prefect.errors import ParameterError
    from dbnd_prefect.planning import plan

    @pipeline
    def literal_only(xs: list):
        return scale_by.map(xs, 2)

    assert [p.task.name for p in plan(literal_only, [1, 2, 3])] == ["scale_by"] * 3
    with pytest.raises(ParameterError, match=r"scale_by.map\(\) over <output 'result' of 'numbers'> cannot be planned"):
        plan(mapped, [1, 2, 3])
