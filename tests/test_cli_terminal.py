"""What `dbnd` prints where it goes: plain greppable lines without a terminal, rich tables and a live
progress display on one (a real pseudo-terminal around the real console script)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbnd_prefect.pytest_plugin import CmdResult, run_cmd
from tests.conftest import REPO

DBND = Path(sys.executable).parent / "dbnd"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
BOX = re.compile("[\u2500-\u257f]")  # box-drawing characters of rich's tables and panels

STEPS = '''
from dbnd_prefect import pipeline, task


@task
def inc(x: int) -> int:
    return x + 1


@pipeline
def term_chain(n: int = 12):
    value = 0
    for _ in range(n):
        value = inc(value)
    return value
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["steps"]\n')
    (tmp_path / "steps.py").write_text(STEPS)
    return tmp_path


def in_terminal(project: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
                ) -> tuple[int, str]:
    """`dbnd ARGS` with stdin, stdout and stderr on a pseudo-terminal; (exit code, everything it wrote)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO)]), "COLUMNS": "200",
           "LINES": "50", "TERM": "xterm-256color", **(env or {})}
    env.pop("NO_COLOR", None)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(DBND), *args], cwd=project, env=env, stdin=terminal, stdout=terminal,
                            stderr=terminal, close_fds=True, start_new_session=True)
    os.close(terminal)
    written, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            written += chunk
        else:
            proc.kill()
            pytest.fail(f"dbnd {' '.join(args)} timed out:\n{written.decode(errors='replace')[-3000:]}")
        return proc.wait(timeout=30), written.decode(errors="replace")
    finally:
        os.close(controller)
        if proc.poll() is None:
            proc.kill()


def test_a_run_on_a_terminal_shows_progress_and_a_summary_table(project):
    code, written = in_terminal(project, "run", "term_chain", "--task-version", "now",
                                env={"PREFECT_LOGGING_LEVEL": "INFO"})
    text = ANSI.sub("", written)
    assert code == 0, text[-3000:]
    reports = [part for part in re.split(r"[\r\n]", text) if "Finished in state" in part]
    assert len(reports) == 13  # 12 task runs and the flow run: Prefect's log lines, printed above the display
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d+ \| INFO ", part) for part in reports), reports
    assert ANSI.search(written), "no colour or cursor control: the terminal was not recognised"
    assert re.search(r"\d+ task run\(s\): \d+ done, \d+ running, \d+ reused", text)  # the live display
    assert "12 task run(s): 12 done, 0 running, 0 reused" in text  # its last state, before it is cleared
    run_line = re.search(r"run ([0-9a-f-]{36}) finished \(env local, data root ", text)
    assert run_line, text[-3000:]
    header = next(line for line in text.splitlines() if "TASK" in line and "STATE" in line)
    assert header.split() == ["TASK", "STATE", "OUTPUT", "URI"]
    rows = [line.split() for line in text.splitlines() if re.match(r"\s+inc\s+Completed\s+result\s+/", line)]
    assert len(rows) == 12 and all(Path(row[3]).is_file() for row in rows)  # full paths, not cut short
    assert f"run record: {project / 'data' / '.dbnd' / 'runs' / run_line.group(1)}.json" in text
    assert "Traceback" not in text and "ERROR" not in text


def test_plan_and_versions_on_a_terminal_are_tables(project):
    assert in_terminal(project, "run", "term_chain", "--set", "n=2")[0] == 0
    code, written = in_terminal(project, "plan", "term_chain", "--set", "n=3")
    text = ANSI.sub("", written)
    assert code == 0, text[-3000:]
    assert BOX.search(text) and "TASK" in text and "STATUS" in text and "WHY" in text
    assert [line.split()[1] for line in text.splitlines() if re.match(r"\s+inc\s+(hit|miss|stale)\s", line)] == \
        ["hit", "hit", "miss"]
    assert "would reuse 2 task run(s) and run 1 (1 miss)" in text
    code, written = in_terminal(project, "versions", "inc", "result")
    text = ANSI.sub("", written)
    assert code == 0 and "inc.result: 2 stored version(s)" in text
    assert ["ENDED", "(UTC)", "SIGNATURE", "FLOW", "RUN", "SIZE", "PARAMETERS", "URI"] in \
        [line.split() for line in text.splitlines()]


def test_a_usage_mistake_on_a_terminal_is_still_one_line(project):
    code, written = in_terminal(project, "run", "term_chain", "--bogus")
    lines = [line for line in ANSI.sub("", written).splitlines() if line.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("dbnd: error: dbnd run: Unknown option: --bogus"), lines
    assert lines[0].endswith("(see dbnd run --help)")


# ----- without a terminal: plain lines ------------------------------------------------------------


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))


def assert_plain(result: CmdResult) -> list[str]:
    assert result.exit_code == 0, result.stderr[-3000:]
    assert not ANSI.search(result.stdout) and not BOX.search(result.stdout), result.stdout
    return result.stdout.splitlines()


def test_without_a_terminal_the_summary_is_plain_lines(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.syspath_prepend(str(project))
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    result = dbnd("run", "term_chain", "--set", "n=3", "--task-version", "now")
    lines = assert_plain(result)
    run_id = result.run.flow_run_id
    assert lines[0] == f"run {run_id} finished (env local, data root {project / 'data'})"
    assert lines[1].startswith("prefect flow run '") and lines[1].endswith(f"/runs/flow-run/{run_id}")
    assert lines[2::2][:3] == ["  inc: Completed"] * 3  # each task, then its outputs indented below it
    for line, entry in zip(lines[3::2], result.run.task_runs):
        assert line.split() == ["result", entry["outputs"]["result"]] and line.startswith("    result")
    assert lines[-1] == f"run record: {project / 'data' / '.dbnd' / 'runs' / run_id}.json"

    planned = assert_plain(dbnd("plan", "term_chain", "--set", "n=3"))
    assert planned[-1] == "would reuse 0 task run(s) and run 3 (3 miss)"  # task_version now ran others
    assert sum(line.startswith("inc  [miss]  signature ") for line in planned) == 3
    assert "[run]" in assert_plain(dbnd("show-config"))
    assert "Usage: dbnd COMMAND" in assert_plain(dbnd("--help"))[0]
