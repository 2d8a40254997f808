"""Cases found in review: fan-in, duplicate calls, signature kinds, JSON fidelity, versions, nesting."""

from __future__ import annotations

import datetime as dt
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect import pipeline, task
from dbnd_prefect.config import config_context
from dbnd_prefect.errors import ParameterError
from dbnd_prefect.run_context import last_run

ran: list[str] = []


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
def noisy(n: int) -> pd.DataFrame:
    ran.append("noisy")
    time.sleep(0.3)
    return pd.DataFrame({"x": np.random.default_rng().random(n)})


@pipeline
def same_call_four_times():
    return [noisy(5) for _ in range(4)]


def test_identical_concurrent_calls_compute_once(workdir):
    ran.clear()
    frames = same_call_four_times()
    assert ran == ["noisy"]
    assert all(f.equals(frames[0]) for f in frames)


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


@task(task_version="1")
def stamped() -> float:
    ran.append("stamped")
    return time.time()


def test_task_version_now_from_a_higher_layer_beats_a_configured_task_version(workdir):
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[stamped]\ntask_version = "1"\n')
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    ran.clear()
    first = stamped()
    assert stamped() == first and ran == ["stamped"]
    with config_context({"run.task_version": "now"}):
        assert stamped() != first
    assert ran == ["stamped", "stamped"]


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
