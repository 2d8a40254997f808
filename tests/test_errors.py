"""Bad input gives one clear error naming the task, the parameter and the URI, and writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pandas as pd
import pytest

from dbnd_prefect import DbndError, pipeline, task
from dbnd_prefect.errors import FormatError, OutputError, ParameterError, TargetError
from tests.sample_tasks import typed


@task
def count_rows(frame: pd.DataFrame) -> int:
    return len(frame)


@task
def two_outputs(n: int) -> Tuple[int, int]:
    return n, n + 1, n + 2  # one too many


@task(result="a, b")
def dict_outputs(n: int) -> dict:
    return {"a": n, "c": n}


@pipeline
def counting_pipeline(frame: pd.DataFrame):
    return count_rows(frame)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".dbnd" not in p.parts] if root.exists() else []


def test_missing_input_file_names_task_parameter_and_uri(workdir):
    with pytest.raises(TargetError) as err:
        count_rows("nope/missing.csv")
    text = str(err.value)
    assert "count_rows" in text and "frame" in text and "missing.csv" in text
    assert "does not exist" in text
    assert _files_under(workdir / "data") == []


def test_missing_input_through_a_pipeline_is_the_same_error(workdir):
    with pytest.raises(TargetError, match=r"count_rows.*frame.*missing\.parquet"):
        counting_pipeline("missing.parquet")


def test_unknown_extension_lists_known_formats(workdir):
    (workdir / "data.xyz").write_text("1,2\n")
    with pytest.raises(FormatError) as err:
        count_rows("data.xyz")
    assert "data.xyz" in str(err.value) and ".csv" in str(err.value) and "format" in str(err.value)


def test_file_that_fails_to_parse(workdir):
    (workdir / "bad.parquet").write_text("this is not parquet")
    with pytest.raises(TargetError) as err:
        count_rows("bad.parquet")
    assert "bad.parquet" in str(err.value) and "parquet" in str(err.value)


def test_return_value_not_matching_declared_outputs(workdir):
    with pytest.raises(OutputError, match=r"two_outputs.*2 outputs.*tuple of length 3"):
        two_outputs(1)
    with pytest.raises(OutputError, match=r"dict_outputs.*\['a', 'c'\].*\['a', 'b'\]"):
        dict_outputs(1)
    assert _files_under(workdir / "data") == []


def test_uncoercible_value_names_parameter_and_type(workdir):
    with pytest.raises(ParameterError, match=r"typed\.n.*integer.*'abc'"):
        typed("abc")


def test_unknown_keyword_lists_valid_parameters(workdir):
    with pytest.raises(ParameterError, match=r"typed.*\['n', 'ratio', 'flag'\]"):
        typed(1, colour="red")


def test_missing_required_parameter(workdir):
    with pytest.raises(ParameterError, match=r"typed.*missing.*\['n'\].*--set typed\.n="):
        typed()


def test_all_are_dbnd_errors():
    for cls in (FormatError, OutputError, ParameterError, TargetError):
        assert issubclass(cls, DbndError)


def test_a_direct_calls_error_hides_the_engines_internals(workdir):
    """Raised `from None` at the edge of the call: no chained Prefect exceptions, no frames of the engine."""
    import traceback

    with pytest.raises(TargetError) as err:
        counting_pipeline("missing.parquet")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    files = {frame.filename for frame in traceback.extract_tb(err.value.__traceback__)}
    assert not [f for f in files if "prefect" in f.split("/site-packages/")[-1].split("/")[0]], files
