"""pytest fixtures for testing your own tasks and pipelines (registered as the `dbnd` pytest plugin).

    def test_prepare_data(dbnd_workdir, dbnd_run_cmd, dbnd_outputs):
        (dbnd_workdir / "raw.csv").write_text("a,b\\n1,2\\n3,4\\n5,6\\n7,8\\n")
        result = dbnd_run_cmd("run prepare_data -m flows.prepare_data --set raw_data=raw.csv")
        assert result.exit_code == 0, result.stderr
        train, validation = dbnd_outputs("prepare_data").values()
        assert len(train) + len(validation) == 4

- `dbnd_workdir`: a fresh working directory (the test's cwd) with its own `dbnd.toml`, data root
  `data/` inside it, no `DBND__` variables and a fresh configuration cache.
- `dbnd_run_cmd(args)`: runs `dbnd ARGS` in this process (a string or a list, without `dbnd`);
  returns `CmdResult(exit_code, stdout, stderr, run)`.
- `dbnd_outputs(task_name)`: the outputs of `task_name` from the last run finished in this test,
  loaded from where they were written, by output name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shlex
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest


@dataclasses.dataclass
class CmdResult:
    """What an in-process `dbnd` command did."""

    exit_code: int
    stdout: str
    stderr: str
    run: Any = None  # the RunContext of a run the command finished, else None


def run_cmd(args: str | Sequence[str]) -> CmdResult:
    """Run `dbnd ARGS` in this process and capture its exit code and output."""
    from dbnd_prefect.cli import main
    from dbnd_prefect.context import last_run

    argv = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    if argv[:1] == ["dbnd"]:
        argv = argv[1:]
    before = last_run()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    after = last_run()
    return CmdResult(code, out.getvalue(), err.getvalue(), after if after is not before else None)


@pytest.fixture
def dbnd_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory with isolated dbnd configuration and its own data root."""
    from dbnd_prefect.config import reset_config_cache

    workdir = tmp_path / "dbnd_work"
    workdir.mkdir()
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n', encoding="utf-8")
    for name in list(os.environ):
        if name.startswith("DBND__"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(workdir)
    reset_config_cache()
    yield workdir
    reset_config_cache()


@pytest.fixture
def dbnd_run_cmd() -> Callable[[str | Sequence[str]], CmdResult]:
    """`dbnd_run_cmd("run TASK --set ...")`: run a `dbnd` command in-process; a CmdResult."""
    return run_cmd


@pytest.fixture
def dbnd_outputs() -> Callable[[str], dict[str, Any]]:
    """`dbnd_outputs("task_name")`: that task's outputs from the last run finished in this test."""
    from dbnd_prefect.api.results import load_task_outputs
    from dbnd_prefect.errors import DbndError
    from dbnd_prefect.context import last_run

    before = last_run()

    def outputs(task_name: str) -> dict[str, Any]:
        current = last_run()
        if current is None or current is before:
            raise DbndError("no dbnd run finished in this test", hint="run one first, e.g. with dbnd_run_cmd")
        return load_task_outputs(current, task_name)

    return outputs
