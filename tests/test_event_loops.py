"""Tasks and pipelines called from code that runs an event loop (asyncio.run, async frameworks).

Prefect's sync-compatible functions return coroutines when called in a thread with a running loop;
a task or pipeline call must still run, return its values and leave no coroutine un-awaited.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.conftest import run_python

SCRIPT = '''
import asyncio
import sys

from dbnd_prefect import log_metric, pipeline, task
from dbnd_prefect.tracking import metrics_outside_runs

calls = []


@task
def double(x: int) -> int:
    calls.append(x)
    return 2 * x


@pipeline
def double_twice(x: int):
    return double(double(x))


async def main():
    # a plain (blocking) call from the thread that runs the event loop
    print("task:", double(3))
    print("pipeline:", double_twice(3))
    # the route that keeps the loop free: run the call in a worker thread
    print("to_thread task:", await asyncio.to_thread(double, 5))
    print("to_thread pipeline:", await asyncio.to_thread(double_twice, 5))
    log_metric("event_loop_check", sys.argv[1])
    print("bodies run:", len(calls))
    print("kept:", metrics_outside_runs()["event_loop_check"][-1]["value"])


asyncio.run(main())
'''


def test_task_and_pipeline_inside_asyncio_run(workdir: Path) -> None:
    script = workdir / "async_job.py"
    script.write_text(SCRIPT)
    token = uuid.uuid4().hex

    first = run_python(str(script), token, cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "task: 6\npipeline: 12\nto_thread task: 10\nto_thread pipeline: 20\n" in first.stdout
    for text in ("RuntimeWarning", "never awaited", "Traceback", "ERROR"):
        assert text not in first.stderr, first.stderr
    assert list((workdir / "data").glob("local/*/double/double_*/_manifest.json")), "no output was versioned"

    # a metric logged from the coroutine itself (outside any run) is kept in the process, with a warning
    assert f"kept: {token}" in first.stdout and "outside" in first.stderr

    second = run_python(str(script), token, cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert "task: 6\npipeline: 12\nto_thread task: 10\nto_thread pipeline: 20\nbodies run: 0\n" in second.stdout
    for text in ("RuntimeWarning", "never awaited", "Traceback", "ERROR"):
        assert text not in second.stderr, second.stderr


def test_storage_block_root_inside_asyncio_run(workdir: Path) -> None:
    from prefect.filesystems import LocalFileSystem

    name = f"event-loop-{uuid.uuid4().hex[:8]}"
    LocalFileSystem(basepath=str(workdir / "block-root")).save(name)
    (workdir / "dbnd.toml").write_text(f'[run]\nstorage_block = "local-file-system/{name}"\n')
    script = workdir / "async_job.py"
    script.write_text(SCRIPT)

    result = run_python(str(script), uuid.uuid4().hex, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "task: 6\npipeline: 12\nto_thread task: 10\nto_thread pipeline: 20\n" in result.stdout
    for text in ("RuntimeWarning", "never awaited", "Traceback", "ERROR"):
        assert text not in result.stderr, result.stderr
    assert list((workdir / "block-root").glob("local/*/double/double_*/_manifest.json")), "outputs not in the block"
    assert not (workdir / "data").exists()
