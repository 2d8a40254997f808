"""Signature-addressed outputs and verified reuse: what reruns, what is reused, on a real Prefect server."""

from __future__ import annotations

import logging
import os
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dbnd_prefect import pipeline, task
from dbnd_prefect.config import config_context
from dbnd_prefect.api.plan import plan
from dbnd_prefect.context import last_run
from tests.counted_chain import calls, chain, count_run, load_rows, summarize


def _states() -> dict[str, str]:
    return {e["task"] + str(i): e["state"] for i, e in enumerate(last_run().task_runs)}


def test_unchanged_rerun_reuses_everything(raw_csv):
    first = chain("raw.csv")
    assert calls == {"load_rows": 1, "scale": 1, "summarize": 2}
    second = chain("raw.csv")
    assert second == first == ({"rows": 3, "total": 12.0}, {"rows": 3, "total": 6.0})
    assert calls == {"load_rows": 1, "scale": 1, "summarize": 2}, "a task body ran again"
    assert set(_states().values()) == {"Cached"}


def test_cached_state_is_visible_through_the_prefect_api(raw_csv):
    chain("raw.csv")
    chain("raw.csv")
    from prefect.client.orchestration import get_client

    from prefect.exceptions import ObjectNotFound

    ids = [e["task_run_id"] for e in last_run().task_runs]
    names: set = set()
    deadline = time.monotonic() + 30  # task runs reach the API through events, a moment later
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                names = {getattr(client.read_task_run(i).state, "name", None) for i in ids}
            except ObjectNotFound:
                names = set()
            if names == {"Cached"}:
                break
            time.sleep(0.5)
    assert names == {"Cached"}


def test_in_place_edit_of_input_file_is_detected(raw_csv):
    chain("raw.csv")
    stat = raw_csv.stat()
    pd.DataFrame({"x": [5, 6, 7, -1]}).to_csv(raw_csv, index=False)  # same size, new content
    os.utime(raw_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert chain("raw.csv") == ({"rows": 3, "total": 36.0}, {"rows": 3, "total": 18.0})
    assert calls["load_rows"] == 2


def test_parameter_change_reruns_only_that_task_and_dependants(raw_csv):
    chain("raw.csv")
    with config_context({"scale.factor": "3"}):
        result = chain("raw.csv")
    assert result == ({"rows": 3, "total": 18.0}, {"rows": 3, "total": 6.0})
    assert calls == {"load_rows": 1, "scale": 2, "summarize": 3}


def test_task_version_now_recomputes_everything(raw_csv):
    chain("raw.csv")
    with config_context({"run.task_version": "now"}):
        chain("raw.csv")
    assert calls == {"load_rows": 2, "scale": 2, "summarize": 4}


def test_deleted_output_is_recomputed_with_a_warning(raw_csv, caplog):
    chain("raw.csv")
    scaled_uri = next(e for e in last_run().task_runs if e["task"] == "scale")["outputs"]["result"]
    Path(scaled_uri).unlink()
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        chain("raw.csv")
    assert calls["scale"] == 2 and calls["load_rows"] == 1
    assert Path(scaled_uri).exists()
    assert any("scale" in r.getMessage() and "missing" in r.getMessage() for r in caplog.records)


def test_tampered_output_is_recomputed_with_a_warning(raw_csv, caplog):
    chain("raw.csv")
    rows_uri = next(e for e in last_run().task_runs if e["task"] == "load_rows")["outputs"]["result"]
    pd.DataFrame({"x": [100, 200, 300]}).to_parquet(rows_uri)
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        result = chain("raw.csv")
    assert result == ({"rows": 3, "total": 12.0}, {"rows": 3, "total": 6.0}), "a tampered output was returned"
    assert calls["load_rows"] == 2
    assert any("load_rows" in r.getMessage() for r in caplog.records)


def test_outputs_live_at_signature_addressed_paths(raw_csv):
    chain("raw.csv")
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    path = Path(entry["outputs"]["result"])
    assert path.parent.name == f"scale_{entry['signature'][:16]}"
    assert path.parent.parent.name == "scale" and path.parents[3].name == "local"
    assert (path.parent / "_manifest.json").is_file()


HELPER_MODULE = """
from dbnd_prefect import task

def helper_b(x):
    return x + {inc}

def helper_a(x):
    return helper_b(x) * 2

def unrelated():
    return {unrelated}

@task
def compute(x: int) -> int:
    print("BODY-RAN")
    return helper_a(x)
"""


def test_helper_function_change_invalidates_but_unrelated_change_does_not(workdir):
    from tests.conftest import run_python

    script = "import sys; sys.path.insert(0, '.'); from mymod import compute; print('VALUE', compute(1))"

    def run(inc: int, unrelated: int) -> str:
        (workdir / "mymod.py").write_text(textwrap.dedent(HELPER_MODULE.format(inc=inc, unrelated=unrelated)))
        proc = run_python("-c", script, cwd=workdir)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert "BODY-RAN" in run(1, 0) and "VALUE 4" in run(1, 0)
    out = run(1, 99)
    assert "BODY-RAN" not in out and "VALUE 4" in out
    out = run(5, 99)
    assert "BODY-RAN" in out and "VALUE 12" in out


@task(versioned=False)
def offset(frame: pd.DataFrame, by: int = 1) -> pd.DataFrame:
    count_run("offset")
    return frame.assign(x=frame["x"] + by)


@pipeline
def with_glue(raw: pd.DataFrame):
    return summarize(offset(load_rows(raw)))


def test_unversioned_task_always_runs_stores_nothing_and_still_chains(raw_csv, workdir):
    assert with_glue("raw.csv") == {"rows": 3, "total": 9.0}
    entry = next(e for e in last_run().task_runs if e["task"] == "offset")
    assert entry["state"] == "Completed" and entry["outputs"] == {}
    assert not list((workdir / "data").rglob("offset*")), "an unversioned task wrote files"
    assert with_glue("raw.csv") == {"rows": 3, "total": 9.0}
    assert calls == {"load_rows": 1, "offset": 2, "summarize": 1}, "downstream reuse broke"
    with config_context({"offset.by": "2"}):
        assert with_glue("raw.csv") == {"rows": 3, "total": 12.0}
    assert calls["summarize"] == 2
    assert {p.task.name: p.status for p in plan(with_glue, "raw.csv")}["offset"] == "miss"


ran: list[str] = []


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
