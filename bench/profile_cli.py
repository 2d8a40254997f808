"""Where the wall time of one whole `dbnd run` process goes, phase by phase (a profiling aid, not a test).

    PREFECT_API_URL=http://127.0.0.1:PORT/api .venv/bin/python bench/profile_cli.py [--n 100] [--reps 3]

Runs `dbnd run chain_dbnd_prefect.chain --set chain.n=N --task-version now` in fresh processes (in a
temporary project folder) through a thin wrapper that times the phases from the outside, by wrapping
functions of dbnd_prefect and Prefect (nothing in the library is changed), and prints the median of each:

    start-up         interpreter start to the wrapper's first line (site, .pth files)
    import cli       `import dbnd_prefect.cli` (+ its commands module)
    import prefect   the modules the wrapper wraps: dbnd_prefect.run_api, .execution, prefect.flows... (most of
                     Prefect's import, which `dbnd run` otherwise pays in prepare_run, importing the chain)
    prepare_run      configuration, discovery: importing the chain module
    run context      `make_run_context`: run settings, storage and result-storage block
    flow start       pipeline call to the first task body: API client, server handshake, flow run creation
    tasks            first task body start to last task body end (per task: divided by N)
    flow end         last task body end to the pipeline's return: flow run state, run record
    summary          printing the run summary; main() returning
    exit             main() returned to process end: thread joins and Prefect's drains of its events and logs
                     workers (threading's at-exit hooks), atexit handlers, then interpreter teardown
    in: ...          total time and number of calls of some functions inside the phases above

With --compare, the same run with wrapper patches that stand in for proposed library changes, alternating:
json_parameters (flow parameters serialised without FastAPI), summary_name_from_run (no second API client
for the summary), exit_after_atexit (os._exit once every atexit handler ran: no interpreter teardown),
gc_freeze_at_exit (gc.freeze() once every atexit handler ran: teardown's garbage collections skip every object),
gc_freeze_before_execute (gc.freeze() once the run is prepared, before Prefect runs the flow),
records_block_load_first (the data root's RecordStore block loaded by name, saved only when missing),
switch_interval_1ms (sys.setswitchinterval(0.001)), env:NAME=VALUE (an environment variable for the run).
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
if "switch_interval_1ms" in os.environ.get("PROFILE_PATCHES", ""):  # GIL hand-over after 1 ms, not 5 ms
    sys.setswitchinterval(0.001)
SPENT = {}  # name -> [seconds, calls] of wrapped functions
def _dump():
    T["atexit_last"] = time.time()
    with open(os.environ["PROFILE_OUT"], "w") as f:
        json.dump({"t": T, "spent": SPENT}, f)
    if "exit_after_atexit" in os.environ.get("PROFILE_PATCHES", ""):  # no interpreter teardown
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(T.get("code", 0))
    if "gc_freeze_at_exit" in os.environ.get("PROFILE_PATCHES", ""):  # teardown skips the collector's walk
        import gc
        gc.freeze()
atexit.register(_dump)  # registered first, so it runs after every other atexit handler
import dbnd_prefect.cli as cli
import dbnd_prefect.cli.commands as commands
T["import_cli"] = time.time()
import importlib

def wrap(module, name, key=None):
    try:  # the library moves on: a function that is gone is simply not timed
        owner = importlib.import_module(module)
        cls, _, attr = name.rpartition(".")
        owner = getattr(owner, cls) if cls else owner
        original = getattr(owner, attr)
    except (ImportError, AttributeError):
        return
    key = key or name
    def wrapper(*a, **k):
        t = time.time()
        T.setdefault(key + "_start", t)
        try:
            return original(*a, **k)
        finally:
            T[key + "_end"] = time.time()
            spent = SPENT.setdefault(key, [0.0, 0])
            spent[0] += T[key + "_end"] - t
            spent[1] += 1
    setattr(owner, attr, wrapper)

wrap("dbnd_prefect.run_api", "prepare_run")
wrap("dbnd_prefect.run_api", "execute")
wrap("dbnd_prefect.run_context", "make_run_context", "run_context")
wrap("dbnd_prefect.execution", "run_task_body", "task_body")
# the library's own calls that a profile showed to cost something (each: total seconds, calls)
wrap("dbnd_prefect.storage", "_records_block", "records block save")
wrap("dbnd_prefect.cli.text", "flow_run_name", "summary: flow run name")
wrap("dbnd_prefect.history.run_record", "write_run_record", "run record")
wrap("dbnd_prefect.wiring", "PipelineScope.summaries", "task summaries")
wrap("prefect.flows", "Flow.serialize_parameters", "serialize parameters")
wrap("dbnd_prefect.execution", "write_outputs", "write outputs")

PATCHES = set(filter(None, os.environ.get("PROFILE_PATCHES", "").split(",")))
if "json_parameters" in PATCHES:  # JSON-native flow parameters without FastAPI's jsonable_encoder
    import prefect.flows
    _serialize = prefect.flows.Flow.serialize_parameters
    def _plain(v):
        return v is None or isinstance(v, (bool, int, float, str)) or (
            isinstance(v, (list, tuple)) and all(map(_plain, v))) or (
            isinstance(v, dict) and all(isinstance(k, str) and _plain(x) for k, x in v.items()))
    def serialize_parameters(self, parameters):
        if all(_plain(v) for v in parameters.values()):
            return {k: (list(v) if isinstance(v, tuple) else v) for k, v in parameters.items()}
        return _serialize(self, parameters)
    prefect.flows.Flow.serialize_parameters = serialize_parameters
if "summary_name_from_run" in PATCHES:  # the flow run name kept from the run, no second API client
    import dbnd_prefect.cli.text as text
    text.flow_run_name = lambda flow_run_id: "kept-from-flow-run-context"
if "records_block_load_first" in PATCHES:  # load the root's saved RecordStore block; save only when missing
    import xxhash
    import dbnd_prefect.versioning.records as storage
    from dbnd_prefect.record_store import RecordStore
    _save_block = storage._records_block
    def _records_block(root):
        basepath = storage._records_basepath(root)
        if basepath not in storage._saved_blocks:
            try:
                block = RecordStore.load(f"dbnd-root-{xxhash.xxh3_64_hexdigest(basepath.encode())}", _sync=True)
                if block.basepath == basepath:
                    storage._saved_blocks[basepath] = block
            except ValueError:  # not saved yet
                pass
        return _save_block(root)
    storage._records_block = _records_block
    wrap("dbnd_prefect.storage", "_records_block", "records block save")
if "gc_freeze_before_execute" in PATCHES:  # everything imported and prepared is left out of every collection
    import gc
    import dbnd_prefect.api.run as api
    _execute = api.execute
    def execute(*a, **k):
        gc.freeze()
        return _execute(*a, **k)
    api.execute = execute
T["setup"] = time.time()
code = cli.main(sys.argv[1:])
T["main_returned"] = time.time()
T["code"] = code
sys.exit(code)
'''


def one_run(n: int, project: Path, env: dict[str, str], patches: str = "") -> dict[str, float]:
    """One whole `dbnd run` process through the wrapper: its phases, wrapped calls, CPU and peak RSS."""
    out = project / "profile.json"
    command = [sys.executable, "-c", WRAPPER, "run", "chain_dbnd_prefect.chain", "--set", f"chain.n={n}",
               "--task-version", "now"]
    start = time.time()
    extra = dict(p[len("env:"):].split("=", 1) for p in patches.split(",") if p.startswith("env:"))
    with open(project / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(command, cwd=project,
                                env={**env, **extra, "PROFILE_OUT": str(out), "PROFILE_PATCHES": patches},
                                stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
    end = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"dbnd run failed ({proc.returncode}):\n{(project / 'stderr.txt').read_text()[-3000:]}")
    data = json.loads(out.read_text())
    t, spent = data["t"], data["spent"]
    phases = {
        "start-up": t["wrapper"] - start,
        "import cli": t["import_cli"] - t["wrapper"],
        "import prefect + wrapped modules": t["setup"] - t["import_cli"],
        "prepare_run": t["prepare_run_end"] - t["prepare_run_start"],
        "run context": t["run_context_end"] - t["run_context_start"],
        "flow start": t["task_body_start"] - t["run_context_end"],
        "tasks": t["task_body_end"] - t["task_body_start"],
        "flow end": t["execute_end"] - t["task_body_end"],
        "summary": t["main_returned"] - t["execute_end"],
        "exit: threads + atexit": t["atexit_last"] - t["main_returned"],
        "exit: finalization": end - t["atexit_last"],
    }
    phases["unaccounted"] = (end - start) - sum(phases.values())
    phases["total"] = end - start
    phases["cpu (user+sys)"] = usage.ru_utime + usage.ru_stime
    phases["peak RSS (MB)"] = usage.ru_maxrss / 1024
    for key, (seconds, calls) in spent.items():
        phases[f"  in: {key} ×{calls}"] = seconds
    return phases


def _table(runs: list[dict[str, float]], n: int) -> list[str]:
    lines = []
    for key in runs[0]:
        values = [r.get(key, 0.0) for r in runs]
        extra = f"  ({statistics.median(values) / n * 1000:.1f} ms/task)" if key == "tasks" else ""
        lines.append(f"  {key:<34} {statistics.median(values):8.3f}   [{', '.join(f'{v:.3f}' for v in values)}]{extra}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compare", action="append", default=[], metavar="PATCH[,PATCH]",
                        help="also run with these wrapper patches (json_parameters, summary_name_from_run, "
                             "exit_after_atexit, gc_freeze_at_exit, gc_freeze_before_execute, records_block_load_first, switch_interval_1ms, env:NAME=VALUE), "
                             "alternating with the unpatched run; prints wall, CPU and peak RSS of each")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between runs (the server digests events)")
    args = parser.parse_args()
    if not os.environ.get("PREFECT_API_URL"):
        print("set PREFECT_API_URL to a running Prefect server", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBND__")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), str(BENCH.parent), env.get("PYTHONPATH")) if p)
    variants = ["", *args.compare]
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="dbnd-profile-") as folder:
        project = Path(folder)
        one_run(args.n, project, env)  # warm-up
        for rep in range(args.reps):
            for variant in (variants if rep % 2 == 0 else variants[::-1]):
                time.sleep(args.pause)
                runs[variant].append(one_run(args.n, project, env, variant))
    print(f"`dbnd run` of a {args.n}-task chain, medians of {args.reps} (seconds):")
    print("\n".join(_table(runs[""], args.n)))
    for variant in args.compare:
        print(f"\nwith {variant}:")
        print("\n".join(line for line in _table(runs[variant], args.n)
                        if line.split()[0] in ("total", "cpu", "peak", "tasks", "flow", "exit:", "summary", "in:")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
