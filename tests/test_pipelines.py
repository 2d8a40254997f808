"""@pipeline on a real Prefect server: wiring, in-memory hand-over, nesting, fan-in, concurrency and .map()."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.context import last_run
from tests.sample_tasks import double, mapped, scale_by, split3


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


def test_pipeline_called_with_in_memory_frame(workdir):
    frame = pd.DataFrame({"x": np.arange(300_000)})
    assert remember_identity(frame) == 300_000
    assert _seen_ids["frame"] == id(frame), "the in-memory frame was copied through the flow parameters"


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


@task
def part(i: int) -> pd.DataFrame:
    return pd.DataFrame({"i": [i, i]})


@task
def combine(parts: list) -> pd.DataFrame:
    return pd.concat(parts, ignore_index=True)


@task
def combine_named(parts: dict) -> int:
    return int(sum(len(v) for v in parts.values()))


@pipeline
def fan_in(n: int = 3):
    pieces = [part(i) for i in range(n)]
    return combine(pieces), combine_named({f"p{i}": p for i, p in enumerate(pieces)})


def test_fan_in_of_a_list_or_dict_of_outputs(workdir):
    frame, count = fan_in()
    assert list(frame["i"]) == [0, 0, 1, 1, 2, 2] and count == 6
    again, _ = fan_in()
    assert again.equals(frame)
    assert {e["state"] for e in last_run().task_runs} == {"Cached"}


@task
def double_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame * 2


@pipeline
def inner_doubling(frame: pd.DataFrame):
    return double_frame(frame)


@pipeline
def outer_doubling():
    return inner_doubling(part(4))


def test_nested_pipeline_inputs_keep_lineage(workdir):
    import json

    assert list(outer_doubling()["i"]) == [8, 8]
    entry = next(e for e in last_run().task_runs if e["task"] == "double_frame")
    manifest = json.loads(Path(entry["manifest"]).read_text())
    (frame_input,) = manifest["inputs"]
    assert frame_input["producer_task"] == "part" and frame_input["uri"].endswith("result.parquet")


_intervals: list[tuple[float, float]] = []


_lock = threading.Lock()
# Tasks that must run at the same time meet here: the barrier lets them through only once all of them wait
# in it (one per thread), and breaks after MEET_TIMEOUT seconds otherwise, which fails the task and the test.
MEET_TIMEOUT = 60.0
_meeting: dict[str, threading.Barrier] = {}


def meet_here(parties: int) -> None:
    """Start a fresh meeting of `parties` tasks (before the pipeline that holds it runs)."""
    _meeting["barrier"] = threading.Barrier(parties, timeout=MEET_TIMEOUT)


@task
def meet(label: str) -> str:
    start = time.monotonic()
    _meeting["barrier"].wait()  # BrokenBarrierError: the other branch did not run meanwhile
    with _lock:
        _intervals.append((start, time.monotonic()))
    return label


@pipeline
def two_branches():
    return meet("a"), meet("b")


def test_independent_branches_run_concurrently(workdir):
    _intervals.clear()
    meet_here(2)
    assert two_branches() == ("a", "b")
    (s1, e1), (s2, e2) = sorted(_intervals)
    assert s2 < e1, f"branches did not overlap: {(s1, e1)} then {(s2, e2)}"


_threads: set[str] = set()


@task(versioned=False)
def note_thread(i: int, meeting: int = 0) -> int:
    if i < meeting:  # the first `meeting` calls run at once, each on its own thread
        _meeting["barrier"].wait()
    with _lock:
        _threads.add(threading.current_thread().name)
    return i


def _wide(n: int, meeting: int = 0):
    return [note_thread(i, meeting) for i in range(n)]


def test_a_wide_pipeline_runs_on_a_bounded_thread_pool(workdir):
    import os

    wide = pipeline(_wide, name="wide")
    _threads.clear()
    meet_here(2)
    assert wide(40, meeting=2) == list(range(40))
    bound = min(32, (os.cpu_count() or 1) + 4)
    assert 2 <= len(_threads) <= bound, f"{len(_threads)} threads for 40 tasks (bound {bound})"


def test_the_thread_pool_follows_prefects_setting_and_an_explicit_task_runner(workdir):
    from prefect.settings import PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS, temporary_settings
    from prefect.task_runners import ThreadPoolTaskRunner

    # as many calls meet as the pool has threads: they can only all wait at once on that many threads
    with temporary_settings({PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS: 2}):
        wide = pipeline(_wide, name="wide_by_setting")
    _threads.clear()
    meet_here(2)
    assert wide(12, meeting=2) == list(range(12))
    assert len(_threads) == 2

    wide = pipeline(_wide, name="wide_by_runner", task_runner=ThreadPoolTaskRunner(max_workers=3))
    _threads.clear()
    meet_here(3)
    assert wide(12, meeting=3) == list(range(12))
    assert len(_threads) == 3


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
