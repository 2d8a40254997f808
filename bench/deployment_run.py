"""Time from `prefect deployment run` to completion: a cached dbnd pipeline vs the same raw Prefect flow.

    .venv/bin/python bench/deployment_run.py            # 5 interleaved runs of each (after one warm-up)
    .venv/bin/python bench/deployment_run.py --reps 2 --tasks 3
    .venv/bin/python bench/deployment_run.py --api-url http://127.0.0.1:4200/api --json   # as bench/run.py runs it

Starts one `prefect server` (throw-away PREFECT_HOME), a process work pool and a real `prefect worker`, deploys
a dbnd pipeline of N trivial tasks and a raw Prefect flow of the same N tasks with plain `prefect deploy --all`,
runs each once to warm up (the dbnd pipeline stores its outputs), then creates flow runs as `prefect deployment
run` does (`create_flow_run_from_deployment`), alternating, and times each from creation until the client sees a
final state. Both pay the worker's poll and its new flow-run process; the dbnd runs reuse every task. Prints the
medians, their ratio (dbnd / raw, target <= 1.05x) and the row for the benchmark table, or with --json one
`BENCH_RESULT {json}` line of every run's numbers. With --api-url it uses that server (its own work pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from server import QUIET_ENV, prefect_server, temporary_home  # noqa: E402

TARGET = 1.05  # issue #25: a deployed run of a cached pipeline, against the same raw flow deployed
JSON_PREFIX = "BENCH_RESULT "  # what bench/run.py reads
FLOWS = '''\
from prefect import flow, task as prefect_task

from dbnd_prefect import pipeline, task


@task
def step(x: int, i: int) -> int:
    return x + i


@pipeline
def dbnd_chain(n: int = {n}) -> int:
    x = 0
    for i in range(n):
        x = step(x, i)
    return x


@prefect_task
def raw_step(x: int, i: int) -> int:
    return x + i


@flow
def raw_chain(n: int = {n}) -> int:
    x = 0
    for i in range(n):
        x = raw_step(x, i)
    return x
'''
PREFECT_YAML = '''\
name: bench-deployments
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{project}"
deployments:
  - name: dbnd
    entrypoint: flows.py:dbnd_chain
    work_pool: {{name: {pool}}}
  - name: raw
    entrypoint: flows.py:raw_chain
    work_pool: {{name: {pool}}}
'''


async def run_once(deployment: str, timeout: float = 120) -> tuple[float, str, float]:
    """(seconds from creating a flow run of `deployment` until the client sees it final, its final state,
    the flow run's own run time as the server recorded it)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    async with get_client() as client:
        started = time.perf_counter()
        flow_run = await run_deployment(deployment, timeout=0, client=client)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            flow_run = await client.read_flow_run(flow_run.id)
            if flow_run.state and flow_run.state.is_final():
                seconds = time.perf_counter() - started
                await asyncio.sleep(0.5)  # the end time arrives with the final state's event
                flow_run = await client.read_flow_run(flow_run.id)
                return seconds, flow_run.state.name, flow_run.total_run_time.total_seconds()
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{deployment} did not finish within {timeout:.0f} s")


def measure_all(api_url: str, home: Path, reps: int, tasks: int, pause: float) -> dict[str, Any]:
    """Deploy both flows on a process pool of the server at `api_url`, start a worker, warm up, then `reps`
    timed runs of each, alternating; the runs' seconds, server-side run times and cached-run counts."""
    os.environ.update({**QUIET_ENV, "PREFECT_HOME": str(home / "prefect-home"), "PREFECT_API_URL": api_url})
    pool = f"bench-{os.getpid()}"
    project = home / "project"
    project.mkdir(parents=True)
    (project / "flows.py").write_text(FLOWS.format(n=tasks))
    (project / "prefect.yaml").write_text(PREFECT_YAML.format(project=project, pool=pool))
    (project / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DBND__")}
    for argv in ([prefect, "work-pool", "create", pool, "--type", "process"],
                 [prefect, "--no-prompt", "deploy", "--all"]):
        subprocess.run(argv, cwd=project, env=env, check=True, capture_output=True)
    log = (home / "worker.log").open("w")
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", pool], cwd=project, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1",
                                   "PREFECT_WORKER_PREFETCH_SECONDS": "1"})
    times: dict[str, list[float]] = {"dbnd": [], "raw": []}
    run_times: dict[str, list[float]] = {"dbnd": [], "raw": []}
    try:
        for deployment in ("dbnd_chain/dbnd", "raw-chain/raw"):  # warm-up: dbnd stores its outputs
            _, state, _ = asyncio.run(run_once(deployment))
            assert state == "Completed", (deployment, state)
        for rep in range(reps):
            order = (("raw", "raw-chain/raw"), ("dbnd", "dbnd_chain/dbnd"))
            for variant, deployment in (order if rep % 2 == 0 else order[::-1]):
                time.sleep(pause)
                seconds, state, run_time = asyncio.run(run_once(deployment))
                assert state == "Completed", (deployment, state)
                times[variant].append(seconds)
                run_times[variant].append(run_time)
    finally:
        for _ in range(2):  # a worker stops on its second SIGTERM
            try:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=15)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()
    records = [json.loads(p.read_text()) for p in (project / "data" / ".dbnd" / "runs").glob("*.json")]
    cached = sum(1 for r in records if r["task_runs"] and all(t["state"] == "Cached" for t in r["task_runs"]))
    return {"tasks": tasks, "seconds": times, "run_seconds": run_times, "dbnd_runs": len(records),
            "dbnd_runs_all_cached": cached}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between runs (the server digests events)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary home (worker.log, data)")
    parser.add_argument("--api-url", default=None, help="use this Prefect API instead of starting a server")
    parser.add_argument("--json", action="store_true", help="print every run's numbers as one BENCH_RESULT line")
    args = parser.parse_args()
    with temporary_home(keep=args.keep) as home:
        server = prefect_server(home) if args.api_url is None else contextlib.nullcontext(args.api_url)
        with server as api_url:
            found = measure_all(api_url, home, args.reps, args.tasks, args.pause)
    if args.json:
        print(JSON_PREFIX + json.dumps(found), flush=True)
        return 0
    times, run_times = found["seconds"], found["run_seconds"]
    raw, dbnd = statistics.median(times["raw"]), statistics.median(times["dbnd"])
    ratio = dbnd / raw
    print(textwrap.dedent(f"""\
        raw runs (s):  {' '.join(f'{t:.2f}' for t in times['raw'])}
        dbnd runs (s): {' '.join(f'{t:.2f}' for t in times['dbnd'])}  ({found['dbnd_runs_all_cached']} of \
{found['dbnd_runs']} dbnd runs reused every task)
        ratio dbnd / raw: {ratio:.3f}x (target <= {TARGET}x)
        flow run time as the server recorded it (context): raw {statistics.median(run_times['raw']):.2f} s, \
dbnd {statistics.median(run_times['dbnd']):.2f} s
        | `prefect deployment run` to completion, {args.tasks}-task pipeline, dbnd cached vs raw flow (process worker) \
| {raw:.2f} s | {dbnd:.2f} s | {ratio:.3g}× | ≤ {TARGET}× | {'yes' if ratio <= TARGET else 'no'} |"""))
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
