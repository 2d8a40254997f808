"""A three-task pipeline that counts how often each task body runs, for the tests of reuse, plans, history,
reproduction and data roots (they read `raw.csv` from the `raw_csv` fixture, which resets the counts)."""

from __future__ import annotations

import pandas as pd

from dbnd_prefect import pipeline, task


calls: dict[str, int] = {}


def count_run(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


@task
def load_rows(raw: pd.DataFrame) -> pd.DataFrame:
    count_run("load_rows")
    return raw[raw["x"] >= 0]


@task
def scale(frame: pd.DataFrame, factor: float = 2.0) -> pd.DataFrame:
    count_run("scale")
    return frame.assign(x=frame["x"] * factor)


@task
def summarize(frame: pd.DataFrame) -> dict:
    count_run("summarize")
    return {"rows": int(len(frame)), "total": float(frame["x"].sum())}


@pipeline
def chain(raw: pd.DataFrame):
    rows = load_rows(raw)
    scaled = scale(rows)
    return summarize(scaled), summarize(rows)
