"""A script that calls a task or pipeline with bad data gets ONE error of dbnd's family, shown from its own line.

Real scripts run as subprocesses against the suite's Prefect server: the error names the task, the parameter,
the URI and the fix; the traceback Python prints ends at the script's call (no frames of dbnd or Prefect, no
chained internals); Prefect's console reports the failure at most once.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_python

SCRIPT = '''
import sys

from pandas import DataFrame
from dbnd_prefect import pipeline, run, task


@task
def count_rows(table: DataFrame) -> int:
    return len(table)


@pipeline
def count_twice(path: str = "rows.csv"):
    return count_rows(path)


how = sys.argv[1]
if how == "task":
    count_rows("missing.csv")  # the call
elif how == "pipeline":
    count_twice("missing.csv")  # the call
elif how == "run":
    run(count_twice, set={"path": "missing.csv"})  # the call
elif how == "caught":
    from dbnd_prefect import DbndError

    try:
        count_rows("missing.csv")
    except DbndError as error:
        print(type(error).__name__, error.task, error.parameter, error.__cause__, error.__suppress_context__)
'''

ERROR_LINE = re.compile(r"^dbnd_prefect\.errors\.TargetError: task 'count_rows', parameter 'table': "
                        r"input '(?P<uri>[^']+)' does not exist \((?P<fix>[^)]+)\)$")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    (tmp_path / "script.py").write_text(SCRIPT)
    return tmp_path


def call_line(project: Path, way: str) -> int:
    """The script's line that makes the call `way` (the line after its `elif how == ...`)."""
    lines = (project / "script.py").read_text().splitlines()
    return next(number + 1 for number, line in enumerate(lines, 1) if f'how == "{way}"' in line)


@pytest.mark.parametrize("way", ["task", "pipeline", "run"])
def test_bad_input_is_one_dbnd_error_from_the_callers_line(project: Path, way: str) -> None:
    proc = run_python("script.py", way, cwd=project)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if ERROR_LINE.match(line)]
    assert len(errors) == 1, proc.stderr
    match = ERROR_LINE.match(errors[0])
    assert match.group("uri") == str(project / "missing.csv")
    assert "check the path" in match.group("fix")
    assert lines[-1] == errors[0]  # the error is the last thing said
    assert proc.stderr.count("Traceback (most recent call last)") == 1, proc.stderr
    assert "The above exception" not in proc.stderr and "During handling" not in proc.stderr
    frames = [line for line in lines if line.startswith('  File "')]
    assert frames == [f'  File "{project / "script.py"}", line {call_line(project, way)}, in <module>'], proc.stderr
    assert sum("| ERROR" in line for line in lines) <= 1, proc.stderr  # Prefect's report, at most once
    assert not list((project / "data").rglob("_manifest.json")) if (project / "data").exists() else True


def test_a_caught_error_is_of_dbnds_family_with_its_context_and_no_chained_internals(project: Path) -> None:
    proc = run_python("script.py", "caught", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "TargetError count_rows table None True"
    assert "Traceback" not in proc.stderr
    assert sum("| ERROR" in line for line in proc.stderr.splitlines()) <= 1, proc.stderr
