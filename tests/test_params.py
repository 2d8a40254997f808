"""How a parameter's annotation decides what the function receives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import fsspec
import numpy as np
import pandas as pd

from dbnd_prefect import Data, Target, task
from tests.sample_tasks import sample_frame, split3, typed


@task
def read_text(doc: Annotated[str, Data()]) -> int:
    return len(doc.split())


@task
def plain_text(label: str) -> str:
    return label.upper()


@task
def semicolon_rows(frame: Annotated[pd.DataFrame, Data(format="csv", load_options={"sep": ";"})]) -> list:
    return list(frame.columns)


@task
def local_file(path: Path) -> str:
    return path.read_text()


@task
def target_only(source: Target) -> str:
    with source.open("rb") as f:
        head = f.read(5)
    return f"{source.uri.rsplit('/', 1)[-1]}:{head.decode()}"


@task
def array_sum(values: np.ndarray) -> float:
    return float(values.sum())


@task
def config_keys(options: dict) -> list:
    return sorted(options)


@task
def when(day: dt.date, at: dt.datetime) -> str:
    return f"{day.isoformat()} {at.hour}"


def test_str_marked_as_data_loads_the_file(workdir):
    (workdir / "doc.txt").write_text("three little words")
    assert read_text("doc.txt") == 3


def test_plain_str_is_not_loaded(workdir):
    assert plain_text("doc.txt") == "DOC.TXT"


def test_forced_format_and_load_options(workdir):
    (workdir / "rows.data").write_text("a;b;c\n1;2;3\n")
    assert semicolon_rows("rows.data") == ["a", "b", "c"]


def test_path_parameter_receives_a_local_path(workdir):
    (workdir / "notes.md").write_text("# hi")
    assert local_file("notes.md") == "# hi"


def test_remote_file_for_path_parameter_is_fetched_to_local_cache(workdir):
    with fsspec.open("memory://bucket/remote-notes.md", "w") as f:
        f.write("from memory")
    assert local_file("memory://bucket/remote-notes.md") == "from memory"


def test_target_parameter_gives_uri_and_open_without_loading(workdir):
    (workdir / "blob.bin").write_bytes(b"hello world")
    assert target_only("blob.bin") == "blob.bin:hello"


def test_ndarray_and_dict_load_from_files_and_pass_through_in_memory(workdir):
    np.save(workdir / "v.npy", np.arange(5))
    assert array_sum("v.npy") == 10.0
    assert array_sum(np.ones(3)) == 3.0
    (workdir / "opts.json").write_text('{"b": 1, "a": 2}')
    assert config_keys("opts.json") == ["a", "b"]
    assert config_keys('{"z": 1}') == ["z"]
    assert config_keys({"k": 1}) == ["k"]


def test_compressed_input_is_decompressed(workdir):
    pd.DataFrame({"x": [1, 2]}).to_csv(workdir / "in.csv.gz", index=False, compression="gzip")
    (workdir / "v.json.bz2").write_bytes(__import__("bz2").compress(b'{"q": 1}'))
    assert array_sum(pd.read_csv(workdir / "in.csv.gz")["x"].to_numpy()) == 3.0
    assert config_keys("v.json.bz2") == ["q"]


def test_memory_uri_input(workdir):
    with fsspec.open("memory://bucket/frame.parquet", "wb") as f:
        pd.DataFrame({"a": [1], "b": [2]}).to_parquet(f)
    assert semicolon_rows.func(pd.read_parquet("memory://bucket/frame.parquet")) == ["a", "b"]
    first, _, _ = split3("memory://bucket/frame.parquet")
    assert list(first.columns) == ["a", "b"]


def test_dates_are_parsed_from_strings(workdir):
    assert when("2026-01-02", "2026-01-02T13:45:00") == "2026-01-02 13"


def test_strings_are_parsed_by_declared_type(workdir):
    assert typed("4", "0.25", "yes") == 1.0


def test_pipeline_called_with_a_path_loads_it(workdir):
    sample_frame(6).to_csv(workdir / "in.csv", index=False)
    first, second, third = split3("in.csv")
    assert list(first["y"]) == ["s0", "s1"]
