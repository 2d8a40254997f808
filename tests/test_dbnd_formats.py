"""Issue #15, data and formats: load options on every route, save options, a format for every value,
compressed output formats, text lines, folder targets. Real runs on the session's Prefect server."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from pathlib import Path
from typing import Annotated, Dict, List

import numpy as np
import pandas as pd
import pytest
from pandas import DataFrame

from dbnd_prefect import Data, pipeline, plan, run, task
from dbnd_prefect.errors import DbndError, OutputError
from dbnd_prefect.pytest_plugin import run_cmd
from dbnd_prefect.targets import Target

SEMICOLON = Annotated[DataFrame, Data(format="csv", load_options={"sep": ";"})]


@task
def fmt15_columns(frame: SEMICOLON) -> list:
    return list(frame.columns)


@pipeline
def fmt15_columns_from_path(path: str = "rows.csv"):
    return fmt15_columns(path)


@pipeline
def fmt15_columns_from_frame(frame: DataFrame):
    return fmt15_columns(frame)


@task
def fmt15_headerless(n: int = 2) -> Annotated[DataFrame, Data(format="csv", save_options={"header": False})]:
    return DataFrame({"a": range(n), "b": range(n)})


@task
def fmt15_mixed_values(n: int = 3) -> np.ndarray:
    return DataFrame({"i": range(n), "s": ["x"] * n}).values  # object dtype


@task
def fmt15_mixed_column(n: int = 2) -> DataFrame:
    return DataFrame({"v": [1, "a"][:n]})  # parquet (pyarrow) refuses a column of ints and strings


@task(output_formats="npy")
def fmt15_forced_npy(n: int = 3) -> np.ndarray:
    return np.array([1, "a", None][:n], dtype=object)


@task(output_formats="pickle.gz")
def fmt15_gz_pickle(n: int = 3) -> dict:
    return {"n": n, "t": (1, 2)}


@task(output_formats="csv.gz")
def fmt15_gz_csv(n: int = 3) -> DataFrame:
    return DataFrame({"a": range(n)})


@task
def fmt15_count_lines(lines: List[str]) -> int:
    return len(lines)


@task
def fmt15_lines(n: int = 3) -> List[str]:
    return [f"line {i}" for i in range(n)]


@task
def fmt15_lines_with_breaks(n: int = 1) -> List[str]:
    return ["one\ntwo"] * n


@task
def fmt15_rows(frame: DataFrame) -> int:
    return len(frame)


@task
def fmt15_split(n: int = 4) -> Dict[str, DataFrame]:
    return {"even": DataFrame({"v": list(range(0, n, 2))}), "odd": DataFrame({"v": list(range(1, n, 2))})}


@task
def fmt15_part_sizes(parts: Dict[str, DataFrame]) -> dict:
    return {k: len(v) for k, v in sorted(parts.items())}


def states(result) -> list[str]:
    return [r["state"] for r in result.run.task_runs]


def outputs_of(result, task_name: str) -> dict[str, str]:
    return next(r["outputs"] for r in result.run.task_runs if r["task"] == task_name)


def one_error_line(result, *expected: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.fixture
def semicolons(workdir: Path) -> Path:
    (workdir / "rows.csv").write_text("a;b;c\n1;2;3\n")
    return workdir / "rows.csv"


# ----- 1. load options, whatever route the path comes by ---------------------------------------------------


def test_load_options_apply_to_a_top_level_call(semicolons):
    assert fmt15_columns("rows.csv") == ["a", "b", "c"]


def test_load_options_apply_to_a_pipeline_parameter(semicolons):
    assert fmt15_columns_from_path("rows.csv") == ["a", "b", "c"]
    assert fmt15_columns_from_frame("rows.csv") == ["a", "b", "c"]  # a DataFrame parameter of the pipeline


def test_load_options_apply_to_run_set(semicolons):
    assert run(fmt15_columns, set={"fmt15_columns.frame": "rows.csv"}).values == ["a", "b", "c"]


def test_load_options_apply_to_cli_set(semicolons):
    result = run_cmd(["run", "fmt15_columns", "--set", "frame=rows.csv"])
    assert result.exit_code == 0, result.stderr
    stored = Path(outputs_of(result, "fmt15_columns")["result"])
    assert pd.read_json(stored, typ="series").tolist() == ["a", "b", "c"]


def parse_task(load_options: dict):
    """The same task (same name, same source) with another reading of its input, as after editing an alias."""
    table = Annotated[DataFrame, Data(format="csv", load_options=load_options)]

    def fmt15_parse(frame):
        return list(frame.columns)

    fmt15_parse.__annotations__ = {"frame": table, "return": list}
    return task(fmt15_parse)


def test_load_options_are_part_of_the_input_fingerprint(semicolons):
    misread = run(parse_task({"sep": ","}), set={"fmt15_parse.frame": "rows.csv"})
    assert misread.values == ["a;b;c"]
    right = run(parse_task({"sep": ";"}), set={"fmt15_parse.frame": "rows.csv"})
    assert right.values == ["a", "b", "c"] and states(right) == ["Completed"]  # not the misread output
    again = run(parse_task({"sep": ";"}), set={"fmt15_parse.frame": "rows.csv"})
    assert again.values == ["a", "b", "c"] and states(again) == ["Cached"]


# ----- 2. save options ------------------------------------------------------------------------------------


def test_save_options_of_an_output_annotation_are_honoured(workdir):
    result = run(fmt15_headerless, set={"fmt15_headerless.n": 2})
    stored = Path(outputs_of(result, "fmt15_headerless")["result"])
    assert stored.suffix == ".csv"
    assert stored.read_text().splitlines() == ["0,0", "1,1"]


# ----- 3. a format for every finished value ---------------------------------------------------------------


def test_object_array_is_kept_as_a_pickle_with_a_warning(workdir, caplog):
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        first = run(fmt15_mixed_values, set={"fmt15_mixed_values.n": 2})
    assert states(first) == ["Completed"]
    stored = Path(outputs_of(first, "fmt15_mixed_values")["result"])
    assert stored.suffix == ".pkl"
    assert "numpy array of Python objects" in caplog.text and "pickle" in caplog.text
    again = run(fmt15_mixed_values, set={"fmt15_mixed_values.n": 2})
    assert states(again) == ["Cached"]
    assert again.values.tolist() == [[0, "x"], [1, "x"]]


def test_a_format_that_fails_on_the_value_gives_way_to_pickle(workdir, caplog):
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        result = run(fmt15_mixed_column)
    assert Path(outputs_of(result, "fmt15_mixed_column")["result"]).suffix == ".pkl"
    assert "cannot be written as parquet" in caplog.text
    assert run(fmt15_mixed_column).values["v"].tolist() == [1, "a"]


def test_a_forced_format_that_fails_keeps_the_value_and_says_where(workdir):
    with pytest.raises(DbndError) as caught:
        run(fmt15_forced_npy)
    message = str(caught.value)
    assert "fmt15_forced_npy" in message and "format 'npy' was forced" in message
    kept = next(Path("data").rglob("result.unsaved.pkl"))
    assert str(kept.resolve()) in message
    assert pickle.loads(kept.read_bytes()).tolist() == [1, "a", None]


# ----- 6. compressed output formats ------------------------------------------------------------------------


def test_pickle_gz_output_is_gzip_and_reloads(workdir):
    first = run(fmt15_gz_pickle)
    stored = Path(outputs_of(first, "fmt15_gz_pickle")["result"])
    assert stored.name == "result.pkl.gz"
    assert pickle.loads(gzip.decompress(stored.read_bytes())) == {"n": 3, "t": (1, 2)}
    again = run(fmt15_gz_pickle)
    assert states(again) == ["Cached"] and again.values == {"n": 3, "t": (1, 2)}


def test_csv_gz_output_is_gzip_and_reloads(workdir):
    stored = Path(outputs_of(run(fmt15_gz_csv), "fmt15_gz_csv")["result"])
    assert stored.name == "result.csv.gz"
    assert gzip.decompress(stored.read_bytes()).decode().splitlines() == ["a", "0", "1", "2"]
    again = run(fmt15_gz_csv)
    assert states(again) == ["Cached"] and again.values["a"].tolist() == [0, 1, 2]


def test_unknown_output_format_fails_at_decoration_with_the_closest_name():
    with pytest.raises(OutputError, match="unknown format 'pikle.gz'.*did you mean 'pickle.gz'"):
        @task(output_formats="pikle.gz")
        def fmt15_typo() -> dict:
            return {}


def test_output_format_that_cannot_hold_the_declared_type_fails_at_decoration():
    with pytest.raises(OutputError, match="format 'txt' cannot store pandas.DataFrame"):
        @task(output_formats="txt")
        def fmt15_wrong_format() -> DataFrame:
            return DataFrame()


def test_plan_predicts_the_files_the_run_writes(workdir):
    predicted = {p.task.name: p.outputs["result"] for p in plan(fmt15_gz_pickle)}
    assert predicted["fmt15_gz_pickle"].endswith("/result.pkl.gz")
    assert plan(fmt15_lines)[0].outputs["result"].endswith("/result.txt")
    planned = plan(fmt15_split)[0].outputs["result"]
    assert planned.endswith("/result/")
    assert outputs_of(run(fmt15_split), "fmt15_split")["result"] == planned


# ----- 11. text lines ---------------------------------------------------------------------------------------


def test_list_of_str_parameter_reads_the_lines_of_a_txt_file(workdir):
    (workdir / "names.txt").write_text("ann\nbob\ncid\n")
    assert fmt15_count_lines("names.txt") == 3
    result = run_cmd(["run", "fmt15_count_lines", "--set", "lines=names.txt"])
    assert result.exit_code == 0, result.stderr
    assert Target(outputs_of(result, "fmt15_count_lines")["result"]).load() == 3


def test_list_of_str_output_is_written_as_lines(workdir):
    first = run(fmt15_lines)
    stored = Path(outputs_of(first, "fmt15_lines")["result"])
    assert stored.name == "result.txt" and stored.read_text() == "line 0\nline 1\nline 2\n"
    again = run(fmt15_lines)
    assert states(again) == ["Cached"] and again.values == ["line 0", "line 1", "line 2"]
    assert fmt15_count_lines(str(stored)) == 3


def test_list_of_str_with_line_breaks_is_kept_whole_as_json(workdir):
    stored = Path(outputs_of(run(fmt15_lines_with_breaks), "fmt15_lines_with_breaks")["result"])
    assert stored.suffix == ".json"
    assert run(fmt15_lines_with_breaks).values == ["one\ntwo"]


# ----- 12. folder targets -----------------------------------------------------------------------------------


def spark_folder(root: Path, name: str = "sales.csv", marker: bool = True) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "part-00000-1f2e.c000.csv").write_text("a,b\n1,2\n3,4\n")
    (folder / "part-00001-1f2e.c000.csv").write_text("a,b\n5,6\n")
    (folder / ".part-00000-1f2e.c000.csv.crc").write_bytes(b"crc")
    if marker:
        (folder / "_SUCCESS").write_text("")
    return folder


def test_folder_of_part_files_loads_as_one_dataframe(workdir):
    spark_folder(workdir)
    assert fmt15_rows("sales.csv/") == 3
    assert fmt15_rows("sales.csv") == 3  # a directory is a folder with or without the slash
    result = run_cmd(["run", "fmt15_rows", "--set", "frame=sales.csv/"])
    assert result.exit_code == 0, result.stderr


def test_folder_without_its_success_marker_is_refused_with_one_line(workdir):
    spark_folder(workdir, marker=False)
    result = run_cmd(["run", "fmt15_rows", "--set", "frame=sales.csv/"])
    one_error_line(result, "fmt15_rows", "no _SUCCESS marker", "success_marker")


def test_folder_fingerprint_follows_its_listing(workdir):
    folder = spark_folder(workdir)
    first = run(fmt15_rows, set={"fmt15_rows.frame": "sales.csv/"})
    assert first.values == 3
    assert states(run(fmt15_rows, set={"fmt15_rows.frame": "sales.csv/"})) == ["Cached"]
    (folder / "part-00002-1f2e.c000.csv").write_text("a,b\n7,8\n")
    changed = run(fmt15_rows, set={"fmt15_rows.frame": "sales.csv/"})
    assert states(changed) == ["Completed"] and changed.values == 4


def test_dict_of_dataframes_is_a_folder_of_one_file_per_key(workdir):
    first = run(fmt15_split)
    stored = outputs_of(first, "fmt15_split")["result"]
    assert stored.endswith("/")
    assert sorted(os.listdir(stored)) == ["_SUCCESS", "even.parquet", "odd.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(Path(stored) / "odd.parquet"), DataFrame({"v": [1, 3]}))
    again = run(fmt15_split)
    assert states(again) == ["Cached"]
    assert sorted(again.values) == ["even", "odd"] and again.values["even"]["v"].tolist() == [0, 2]
    assert fmt15_part_sizes(stored) == {"even": 2, "odd": 2}
    assert fmt15_rows(stored) == 4  # the same folder read as one DataFrame
