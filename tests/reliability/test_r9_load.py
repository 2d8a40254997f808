"""R9: 50 concurrent flow runs against one local Prefect server, backed by SQLite and by Postgres.

dbnd's local server (`run.api = "local"`) for a PREFECT_HOME of its own (so its own SQLite database; the suite's
server is not disturbed) serves 5 processes × 10 threads, each thread calling a two-task pipeline at the same moment (the
processes import first, then wait for one go signal). Every run must complete on the server and in its process,
every output must be on disk with the expected content and listed in its run record, and nothing a user sees
(the processes' stdout and stderr) may mention `database is locked`, an ERROR or a traceback.

    python -m tests.reliability.test_r9_load THREADS FIRST GO_FILE   (one worker process, in a project folder)
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pandas import DataFrame

from dbnd_prefect import pipeline, task
from tests.conftest import REPO

PROCESSES, THREADS = 5, 10
RUNS = PROCESSES * THREADS
ROWS = 500


@task
def r9_make(i: int, rows: int = ROWS) -> DataFrame:
    return DataFrame({"i": [i] * rows, "x": range(rows)})


@task
def r9_total(frame: DataFrame) -> dict:
    return {"i": int(frame["i"].iloc[0]), "sum": int(frame["x"].sum())}


@pipeline
def r9_pipe(i: int = 0):
    return r9_total(r9_make(i))


def expected_total(i: int) -> dict:
    return {"i": i, "sum": ROWS * (ROWS - 1) // 2}


# ----- one worker process: THREADS pipeline calls at once -------------------------------------------------


def worker(threads: int, first: int, go: Path) -> None:
    """Call r9_pipe(i) for i in first..first+threads-1, one thread each, once `go` exists; one JSON line each."""
    print(json.dumps({"ready": os.getpid()}), flush=True)
    while not go.exists():
        time.sleep(0.01)
    lock = threading.Lock()

    def one(i: int) -> None:
        started = time.monotonic()
        try:
            outcome = {"i": i, "result": r9_pipe(i)}
        except BaseException as exc:  # reported to the test, which fails on it
            outcome = {"i": i, "error": f"{type(exc).__name__}: {exc}"}
        outcome["seconds"] = round(time.monotonic() - started, 2)
        with lock:
            print(json.dumps(outcome, default=str), flush=True)

    pool = [threading.Thread(target=one, args=(first + n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


# ----- the test -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def local_server(request, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """dbnd's own local Prefect server (what `run.api = "local"`, the default without PREFECT_API_URL, starts) for
    a PREFECT_HOME of its own, so not the suite's server: on SQLite in that home, or on a real Postgres
    (`[server] database_url`, here DBND_SERVER_DATABASE_URL); (API URL, PREFECT_HOME)."""
    from dbnd_prefect.runtime import local_server as server

    # Postgres first: its server must not inherit this PREFECT_HOME (it outlives the module and is not ours)
    database = request.getfixturevalue("postgres")["url"] if request.param == "postgres" else None
    home = tmp_path_factory.mktemp(f"r9-prefect-home-{request.param}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREFECT_HOME", str(home))
        patch.delenv("PREFECT_API_URL")
        if database:
            patch.setenv("DBND_SERVER_DATABASE_URL", database)
        patch.setattr(server, "START_TIMEOUT", 180.0)  # its migrations take long on a loaded 2-core machine
        url = server.ensure_running(home, announce=False)
        try:
            yield url, home
        finally:
            server.stop(home)
            leftover = _outlived_stop(home)
    assert leftover == [], f"processes of the server's home outlived local_server.stop (killed): {leftover}"


def _outlived_stop(home: Path, timeout: float = 15) -> list[int]:
    """The processes of `home` still alive `timeout` seconds after the server's stop, killed (a server that
    outlived its stop once under load)."""
    import signal

    from tests.test_local_server import _processes_of

    deadline = time.monotonic() + timeout
    while (left := _processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


async def flow_run_states(api_url: str) -> dict[str, int]:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with PrefectClient(api=api_url) as client:
        runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["r9_pipe"])),
                                           limit=200)
    states: dict[str, int] = {}
    for run in runs:
        states[run.state_name] = states.get(run.state_name, 0) + 1
    return states


@pytest.mark.slow
def test_50_concurrent_flow_runs_on_one_local_server_all_complete(local_server, tmp_path):
    from dbnd_prefect.targets import Target

    api_url, home = local_server
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    go = tmp_path / "go"
    env = {**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}, "PREFECT_HOME": str(home),
           "DBND__RUN__API": "local", "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.reliability.test_r9_load", str(THREADS),
                               str(n * THREADS), str(go)], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
             for n in range(PROCESSES)]
    try:
        for proc in procs:  # every process has imported everything: the runs start together
            assert "ready" in proc.stdout.readline(), proc.stderr.read()
        started = time.monotonic()
        go.touch()
        outputs = [proc.communicate(timeout=600) for proc in procs]  # 255 s seen at load 18
        wall = time.monotonic() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    outcomes = [json.loads(line) for out, _ in outputs for line in out.splitlines() if line.startswith("{")]
    seen = " ".join(out + err for out, err in outputs)
    print(f"R9: {RUNS} flow runs ({PROCESSES} processes x {THREADS} threads) in {wall:.1f} s; slowest run "
          f"{max((o['seconds'] for o in outcomes), default=0):.1f} s")
    assert [proc.returncode for proc in procs] == [0] * PROCESSES, seen[-3000:]
    assert "database is locked" not in seen.lower()
    assert "Traceback" not in seen and " ERROR " not in seen and "| ERROR" not in seen, seen[-3000:]
    assert sorted(o["i"] for o in outcomes) == list(range(RUNS))
    failed = [o for o in outcomes if "error" in o]
    assert failed == [], json.dumps(failed, indent=1)
    assert all(o["result"] == expected_total(o["i"]) for o in outcomes)

    # the server recorded every run as completed
    assert asyncio.run(flow_run_states(api_url)) == {"Completed": RUNS}

    # no lost outputs: one run record per run, each output on disk with its content
    records = [json.loads(p.read_text()) for p in (tmp_path / "data" / ".dbnd" / "runs").glob("*.json")]
    assert len(records) == RUNS and {r["state"] for r in records} == {"Completed"}
    totals = {}
    for record in records:
        runs = {entry["task"]: entry for entry in record["task_runs"]}
        assert set(runs) == {"r9_make", "r9_total"} and {e["state"] for e in runs.values()} == {"Completed"}
        frame = Target(runs["r9_make"]["outputs"]["result"]).load("pandas.DataFrame")
        total = Target(runs["r9_total"]["outputs"]["result"]).load("dict")
        assert len(frame) == ROWS and total == expected_total(int(frame["i"].iloc[0]))
        totals[total["i"]] = total
    assert sorted(totals) == list(range(RUNS))


if __name__ == "__main__":
    worker(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
