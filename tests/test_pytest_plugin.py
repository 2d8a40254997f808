"""The pytest plugin as a user's test suite sees it: dbnd_workdir, dbnd_run_cmd, dbnd_outputs."""

from __future__ import annotations

from importlib.metadata import entry_points

from tests.conftest import REPO

pytest_plugins = ["pytester"]

PLUGIN = "dbnd_prefect.pytest_plugin"

USER_TESTS = '''
import os

import pandas as pd
import pytest

from dbnd_prefect.errors import DbndError


def test_prepare_data_in_a_few_lines(dbnd_workdir, dbnd_run_cmd, dbnd_outputs):
    pd.DataFrame({"a": range(8), "quality": range(8)}).to_csv("raw.csv", index=False)
    result = dbnd_run_cmd("run prepare_data -m flows.prepare_data --set raw_data=raw.csv")
    assert result.exit_code == 0, result.stderr
    assert "prepare_data: Completed" in result.stdout
    assert result.run.data_root == str(dbnd_workdir / "data")
    outputs = dbnd_outputs("prepare_data")
    assert len(outputs["result_1"]) == 6 and len(outputs["result_2"]) == 2
    assert sorted(outputs["result_1"].columns) == ["a", "quality"]


def test_workdir_is_isolated(dbnd_workdir, dbnd_run_cmd):
    assert os.getcwd() == str(dbnd_workdir)
    assert "DBND__PREPARE_DATA__RAW_DATA" not in os.environ
    result = dbnd_run_cmd(["dbnd", "show-config"])
    assert result.exit_code == 0
    assert "prepare_data" not in result.stdout
    assert "data_root = 'data'" in result.stdout


def test_errors_come_back_as_exit_code_and_stderr(dbnd_workdir, dbnd_run_cmd, dbnd_outputs):
    result = dbnd_run_cmd("run prepare_data -m flows.prepare_data --set raw_data=missing.csv")
    assert result.exit_code == 2
    assert "input file not found: prepare_data.raw_data = 'missing.csv'" in result.stderr
    assert result.run is None
    with pytest.raises(DbndError, match="no dbnd run finished in this test"):
        dbnd_outputs("prepare_data")
'''


def plugin_args() -> list[str]:
    """Load the plugin by name unless its entry point already does (registering it twice is an error)."""
    registered = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    # kmock (installed for the Kubernetes tests) registers a plugin that needs pytest-asyncio: not the user's
    others = ["-p", "no:kmock"] if any(ep.name == "kmock" for ep in entry_points(group="pytest11")) else []
    return others if registered else [*others, "-p", PLUGIN]


FAILING_USER_TEST = '''
def test_wrong_expectation(dbnd_workdir, dbnd_run_cmd):
    result = dbnd_run_cmd("run no_such_task")
    assert result.exit_code == 0, result.stderr
'''


def test_users_tests_with_the_fixtures(pytester, monkeypatch):
    # A subprocess: an in-process inner session would unload pyarrow & co. on exit, which cannot be reloaded.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("DBND__PREPARE_DATA__RAW_DATA", "leaked.csv")  # must not reach the user's tests
    pytester.makepyfile(test_user_pipeline=USER_TESTS, test_user_fail=FAILING_USER_TEST)
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:randomly", "-p", "no:cacheprovider",
                                           timeout=240)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*dbnd: error: unknown task or pipeline 'no_such_task'*"])


def test_plugin_is_registered_through_an_entry_point():
    found = [ep for ep in entry_points(group="pytest11") if ep.value == PLUGIN]
    assert found, (f"add `dbnd = \"{PLUGIN}\"` under [project.entry-points.pytest11] in pyproject.toml "
                   "and reinstall the package")


def test_loading_the_plugin_does_not_import_prefect():
    # pytest loads entry-point plugins before conftest.py files run; Prefect reads its settings
    # (PREFECT_API_URL, PREFECT_HOME) when imported, so an early import would ignore the ones a
    # user's conftest sets.
    import subprocess
    import sys

    code = "import sys, dbnd_prefect.pytest_plugin; print(sorted({'prefect', 'pandas'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"
