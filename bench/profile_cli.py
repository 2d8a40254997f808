"""Where the wall time of one whole `dbnd run` process goes, phase by phase (a profiling aid, not a test).

    PREFECT_API_URL=http://127.0.0.1:PORT/api .venv/bin/python bench/profile_cli.py [--n 100] [--reps 3]

Runs `dbnd run chain_dbnd_prefect.chain --set chain.n=N --task-version now` in fresh processes (in a
temporary project folder) through a thin wrapper that times the phases from the outside, by wrapping
functions of dbnd_prefect and Prefect (nothing in the library is changed), and prints the median of each:

    start-up         interpreter start to the wrapper's first line (site, .pth files)
    import cli       `import dbnd_prefect.cli` (+ its commands module) and argument parsing
    prepare_run      configuration, discovery: importing the chain module (and what it imports: prefect)
    run context      `make_run_context`: run settings, storage and result-storage block
    flow start       pipeline call to the first task body: API client, server handshake, flow run creation
    tasks            first task body start to last task body end (per task: divided by N)
    flow end         last task body end to the pipeline's return: flow run state, run record
    summary          printing the run summary; main() returning
    exit             main() returned to process end: thread joins, atexit (Prefect's events/logs workers)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

WRAPPER = r'''
import time, json, os, sys, atexit
T = {"wrapper": time.time()}
def _dump():
    T["atexit_last"] = time.time()
    with open(os.environ["PROFILE_OUT"], "w") as f:
        json.dump(T, f)
atexit.register(_dump)  # registered first, so it runs after every other atexit handler
import dbnd_prefect.cli as cli
import dbnd_prefect.cli.commands as commands
T["import_cli"] = time.time()
import dbnd_prefect.api as api

def wrap(owner, name, key):
    original = getattr(owner, name)
    def wrapper(*a, **k):
        T.setdefault(key + "_start", time.time())
        try:
            return original(*a, **k)
        finally:
            T[key + "_end"] = time.time()
    setattr(owner, name, wrapper)

wrap(api, "prepare_run", "prepare_run")
wrap(api, "execute", "execute")
import dbnd_prefect.runtime as runtime
wrap(runtime, "make_run_context", "run_context")
import dbnd_prefect.prefect_api as prefect_api
wrap(prefect_api, "use_api", "use_api")
import dbnd_prefect.execution as execution
wrap(execution, "run_task_body", "task_body")
T["setup"] = time.time()
code = cli.main(sys.argv[1:])
T["main_returned"] = time.time()
sys.exit(code)
'''


def one_run(n: int, project: Path, env: dict[str, str]) -> dict[str, float]:
    out = project / "profile.json"
    command = [sys.executable, "-c", WRAPPER, "run", "chain_dbnd_prefect.chain", "--set", f"chain.n={n}",
               "--task-version", "now"]
    start = time.time()
    done = subprocess.run(command, cwd=project, env={**env, "PROFILE_OUT": str(out)}, capture_output=True, text=True)
    end = time.time()
    if done.returncode != 0:
        raise SystemExit(f"dbnd run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    t = json.loads(out.read_text())
    t0 = start
    phases = {
        "start-up": t["wrapper"] - t0,
        "import cli": t["import_cli"] - t["wrapper"],
        "profiler set-up": t["setup"] - t["import_cli"],
        "prepare_run": t["prepare_run_end"] - t["prepare_run_start"],
        "run context": t["run_context_end"] - t["run_context_start"],
        "use_api": t.get("use_api_end", 0) - t.get("use_api_start", 0),
        "flow start": t["task_body_start"] - t["run_context_end"],
        "tasks": t["task_body_end"] - t["task_body_start"],
        "flow end": t["execute_end"] - t["task_body_end"],
        "summary": t["main_returned"] - t["execute_end"],
        "exit: threads + atexit": t["atexit_last"] - t["main_returned"],
        "exit: finalization": end - t["atexit_last"],
        "total": end - t0,
    }
    phases["unaccounted"] = phases["total"] - sum(v for k, v in phases.items() if k not in ("total", "use_api"))
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if not os.environ.get("PREFECT_API_URL"):
        print("set PREFECT_API_URL to a running Prefect server", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBND__")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), str(BENCH.parent), env.get("PYTHONPATH")) if p)
    runs = []
    with tempfile.TemporaryDirectory(prefix="dbnd-profile-") as folder:
        project = Path(folder)
        one_run(args.n, project, env)  # warm-up
        for _ in range(args.reps):
            time.sleep(2)
            runs.append(one_run(args.n, project, env))
    print(f"`dbnd run` of a {args.n}-task chain, medians of {args.reps} (seconds):")
    for key in runs[0]:
        values = [r[key] for r in runs]
        extra = f"  ({statistics.median(values) / args.n * 1000:.1f} ms/task)" if key == "tasks" else ""
        print(f"  {key:<24} {statistics.median(values):7.3f}   [{', '.join(f'{v:.3f}' for v in values)}]{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
