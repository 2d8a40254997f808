"""The real `dbnd` console script on bad data found only when a task loads it, and on failing tasks.

Bad input data is an input error: exit code 2, one line naming the task, the parameter, the URI and
the fix, no traceback (Prefect's included) and nothing left in the data root's `.dbnd/` but the run
record. A task whose own code raises is a task failure: exit code 1, one line, a traceback only with
--verbose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

DBND = Path(sys.executable).parent / "dbnd"

STEPS = '''
from pandas import DataFrame
from dbnd_prefect import pipeline, task


@task
def count_rows(table: DataFrame) -> int:
    return len(table)


@task
def double(n: int) -> int:
    return 2 * n


@task
def explode(n: int = 1) -> int:
    raise ValueError(f"cannot go on with {n}")


@pipeline
def count_twice(path: str = "rows.csv"):
    """The path reaches count_rows from the pipeline's code, so it is read only when the task loads it."""
    return double(count_rows(path))
'''


def dbnd(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    return subprocess.run([str(DBND), *args], cwd=project, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a module of tasks, good data and every kind of bad data."""
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["steps"]\n')
    (tmp_path / "steps.py").write_text(STEPS)
    pd.DataFrame({"a": [1, 2, 3]}).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not a parquet file")
    (tmp_path / "broken.csv").write_text('a,b\n1,2\n"an unterminated quote\n')
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.csv").mkdir()
    return tmp_path


def other_lines(stderr: str) -> list[str]:
    """stderr without Prefect's INFO lines (flow run started, its UI link)."""
    return [line for line in stderr.strip().splitlines() if "| INFO " not in line]


def left_in_dbnd(project: Path) -> list[Path]:
    """Files in the data root's `.dbnd/` other than run records (failure pickles, cache records...)."""
    root = project / "data" / ".dbnd"
    return [p for p in root.rglob("*") if p.is_file() and "runs" not in p.relative_to(root).parts]


BAD_DATA = [
    ("corrupt.parquet", "cannot read", "as parquet", "check the file's content"),
    ("broken.csv", "cannot read", "as csv", "check the file's content"),
    ("empty.csv", "cannot read", "EmptyDataError", "check the file's content"),
    ("folder", "holds no data files", "", "pass the path of a file, or of a folder of part files"),
    ("folder.csv", "holds no data files", "", "pass the path of a file, or of a folder of part files"),
]


@pytest.mark.parametrize("name, problem, detail, fix", BAD_DATA, ids=[case[0] for case in BAD_DATA])
def test_bad_data_found_by_a_task_is_one_input_error_line(project, name, problem, detail, fix):
    proc = dbnd(project, "run", "count_twice", "--set", f"path={name}")
    assert proc.returncode == 2, proc.stderr
    lines = other_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("dbnd: error: task 'count_rows', parameter 'table': "), line
    assert str(project / name) in line and problem in line and detail in line
    assert line.endswith(")") and fix in line.rsplit("(", 1)[1]
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr
    assert proc.stdout == ""
    assert left_in_dbnd(project) == []  # no failure pickle, cache record or manifest
    assert not [p for p in (project / "data").rglob("_manifest.json")]


def test_verbose_shows_one_traceback_of_the_input_error(project):
    proc = dbnd(project, "run", "count_twice", "--set", "path=broken.csv", "--verbose")
    assert proc.returncode == 2
    assert proc.stderr.count("Traceback (most recent call last)") == 1  # dbnd's own; Prefect's logs name it only
    assert "Task run failed with exception: TargetError" in proc.stderr  # Prefect's report, shown with --verbose
    assert proc.stderr.strip().splitlines()[-1].startswith("dbnd: error: task 'count_rows', parameter 'table'")


def test_an_empty_directory_given_to_the_task_being_run_is_refused_before_anything_runs(project):
    proc = dbnd(project, "run", "count_rows", "--set", "table=folder.csv")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"dbnd: error: count_rows.table = 'folder.csv' (from --set count_rows.table=folder.csv): folder "
        f"'{project / 'folder.csv'}/' holds no data files (pass the path of a file, or of a folder of part files)"]
    assert not (project / "data").exists()


def test_failing_task_code_is_exit_1_and_one_line(project):
    proc = dbnd(project, "run", "explode", "--set", "n=7")
    assert proc.returncode == 1, proc.stderr
    assert other_lines(proc.stderr) == [
        "dbnd: error: task 'explode' failed: ValueError: cannot go on with 7 (run with --verbose for the traceback)"]
    assert "Traceback" not in proc.stderr and "ERROR" not in proc.stderr
    assert proc.stdout == ""


def test_failing_task_code_with_verbose_shows_the_tracebacks(project):
    proc = dbnd(project, "run", "explode", "--verbose")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert 'raise ValueError(f"cannot go on with {n}")' in proc.stderr  # the task's own line
    assert proc.stderr.strip().splitlines()[-1].startswith("dbnd: error: task 'explode' failed: ValueError")


def test_good_data_still_runs(project):
    proc = dbnd(project, "run", "count_twice")
    assert proc.returncode == 0, proc.stderr
    assert "  count_rows: Completed" in proc.stdout and "  double: Completed" in proc.stdout
    assert "ERROR" not in proc.stderr and "Traceback" not in proc.stderr


def test_config_explain_of_an_unknown_task_or_parameter(project):
    typo_param = dbnd(project, "config", "explain", "count_rows.tabel")
    assert typo_param.returncode == 2
    assert typo_param.stderr.strip() == (
        "dbnd: error: unknown parameter count_rows.tabel; did you mean 'table'? (parameters of count_rows: table)")
    typo_task = dbnd(project, "config", "explain", "count_row.table")
    assert typo_task.returncode == 2
    assert typo_task.stderr.startswith(
        "dbnd: error: unknown task 'count_row' in config explain count_row.table; did you mean 'count_rows'?")
    run_key = dbnd(project, "config", "explain", "run.verfy")
    assert run_key.returncode == 2 and "unknown key run.verfy; did you mean 'verify'?" in run_key.stderr
    known = dbnd(project, "config", "explain", "count_rows.table", "--set", "count_rows.table=rows.csv")
    assert known.returncode == 0, known.stderr
    assert known.stdout.splitlines()[:2] == [
        "count_rows.table = 'rows.csv'", "  set by: set layer, --set count_rows.table=rows.csv"]



def test_an_unknown_command_is_one_clean_line_with_the_closest_command(project):
    typo = dbnd(project, "rnu", "count_rows")
    assert typo.returncode == 2
    line = typo.stderr.strip()
    assert line.startswith("dbnd: error: unknown command 'rnu'; did you mean 'run'? (commands: run, plan, "), line
    assert line.endswith("; see dbnd --help)") and "\n" not in line
    assert '"' not in line and "Available commands" not in line and ", (" not in line
    unknown = dbnd(project, "zzz")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().startswith("dbnd: error: unknown command 'zzz' (commands: run, ")


@pytest.mark.parametrize("name", ["pyproject.toml", "dbnd.toml"])
def test_a_toml_syntax_error_names_the_file_line_and_column(project, name):
    """pyproject.toml is read by Prefect too, when it is imported: the error is still dbnd's one line."""
    (project / name).write_text('[tool.dbnd.run]\ndata_root = "data"\nmodules = ["steps"\n' if name == "pyproject.toml"
                                else '[run]\ndata_root = "data"\nmodules = ["steps"]\nverify =\n')
    proc = dbnd(project, "run", "count_twice")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert re.match(rf"dbnd: error: {re.escape(name)}:(\d+): invalid TOML: .* \(at (end of document, )?line \1, "
                    r"column \d+\) \(fix the syntax at that line\)$", lines[0]), lines[0]
    assert "Traceback" not in proc.stderr
