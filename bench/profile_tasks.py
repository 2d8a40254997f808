"""Where a pipeline's per-task time goes: py-spy samples of timed flows, grouped by what the code was doing.

    .venv/bin/python bench/profile_tasks.py                      # dbnd: 100-task chain + 200 independent tasks
    .venv/bin/python bench/profile_tasks.py --case chain:raw --case chain:dbnd_unversioned --runs 5
    .venv/bin/python bench/profile_tasks.py --api-url http://127.0.0.1:PORT/api --keep-raw /tmp/profiles

Starts one `prefect server` (bench/server.py) unless --api-url is given. Each case runs in a fresh process
(the bench worker's flows, bench/flows_*.py): a warm-up, then py-spy attaches to the process and samples
`--runs` timed flow calls back to back. Sampling is `--gil`: only the thread holding the GIL
is recorded, so a sample is Python CPU time on whichever thread (pipeline, task runner, Prefect's event
loop and workers); time spent waiting for the server, the disk or the GIL itself is not sampled. The
report gives each category in ms per task (samples / rate / tasks) next to the wall per task; a sample
goes to the first category of CATEGORIES that one of its frames matches, so the numbers add up.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from report import REPO  # noqa: E402
from server import QUIET_ENV, prefect_server, temporary_home  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"

# (category, pattern on a sample's stack ";outermost (file:line);...;innermost (file:line)"): the first pattern,
# in this order, that the stack matches names its category. dbnd's steps come first: they run inside
# Prefect's engine.
CATEGORIES: list[tuple[str, str]] = [
    ("dbnd: verify before submit (drop_if_broken)", r"[;.]drop_if_broken \("),
    ("dbnd: bind + signature (bind_call)", r"[;.]bind_call \("),
    ("dbnd: task body: load inputs", r"[;.]load_input \(dbnd_prefect"),
    ("dbnd: task body: output writes", r"[;.]write_outputs \(dbnd_prefect"),
    ("dbnd: task body: manifest (build + write)", r"[;.](build_manifest|_describe_inputs) \(|"
                                                  r"run_task_body \(dbnd_prefect/execution\.py:\d+\);Target\.save \("),
    ("dbnd: task body: user function", r"run_task_body \([^)]*\);[^;]*call_function \("),
    ("dbnd: task body: other", r"[;.]run_task_body \(dbnd_prefect"),
    ("dbnd: cache key (SignaturePolicy)", r"[;.]compute_key \(dbnd_prefect"),
    ("Prefect: cache record write (result store)", r"[;.](persist_result_record|_persist_result_record) \(prefect/"),
    ("Prefect: cache lookup (transaction begin, record exists/read)",
     r"[;.](compute_transaction_key|begin|is_committed|read_result_record|exists) \(prefect/(transactions|results)"),
    ("Prefect: task logs (console + API log queue)", r"\(prefect/logging/handlers\.py|[;.]log_finished_message \("),
    ("Prefect: state-change events", r"[;.]emit_task_run_state_change_event \("),
    ("Prefect: upstream futures in parameters (resolve_inputs)", r"[;.]resolve_inputs(_sync)? \(prefect/"),
    ("Prefect: submit (task runner, future) from the pipeline", r"[;.]submit \(dbnd_prefect/wiring\.py|"
                                                                r"ThreadPoolTaskRunner\.submit \("),
    ("dbnd: pipeline body other (refs, wait, summaries)", r"\(dbnd_prefect/"),
    ("Prefect: task engine other (states, context, run setup)", r"\(prefect/task_engine\.py"),
    ("Prefect: flow engine (pipeline thread, waiting)", r"\(prefect/flow_engine\.py"),
    ("Prefect: events + logs worker threads", r"\(prefect/(events|logging)/"),
    ("Prefect: API client / event loop threads", r"\(prefect/(_internal|client)/"),
]
OTHER = "other (threading, GC, interpreter)"

TARGET = r'''
import json, os, signal, subprocess, sys, time
sys.path.insert(0, os.environ["BENCH_DIR"])
measure, variant, n, runs, rate, out = sys.argv[1:7]
n, runs = int(n), int(runs)
import contextlib
from worker import no_heartbeat, scratch
if variant.startswith("dbnd"):
    import flows_dbnd as f
    call = {("chain", "dbnd"): f.d_chain, ("chain", "dbnd_unversioned"): f.d_chain_glue,
            ("tasks", "dbnd"): f.d_many_tasks, ("tasks", "dbnd_unversioned"): f.d_many_glue,
            ("tasks", "dbnd_block"): f.d_many_tasks}[measure, variant]
    context = contextlib.nullcontext()
    if variant == "dbnd_block":  # a saved LocalFileSystem block as the data root, as the bench's worker does
        from prefect.filesystems import LocalFileSystem
        from dbnd_prefect.config import config_context
        LocalFileSystem(basepath=str(scratch() / "block-root")).save("dbnd-bench-root", overwrite=True)
        context = config_context({"run.storage_block": "local-file-system/dbnd-bench-root"})
else:
    import flows_raw as f
    if variant == "raw_persist":
        f.trivial = f.trivial.with_options(persist_result=True, result_storage=scratch() / "results")
    call = {("chain", "raw_submit"): f.chain_submitted, ("tasks", "raw_submit"): f.many_tasks_submitted}.get(
        (measure, variant), {"chain": f.chain, "tasks": f.many_tasks}[measure])
    context = no_heartbeat()
with context:
    call(5, -1000)
    time.sleep(2)
    spy = subprocess.Popen([os.environ["PY_SPY"], "record", "--pid", str(os.getpid()), "--gil",
                            "--threads", "--format", "raw", "--rate", rate, "--output", out],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)  # py-spy attaches
    walls = []
    started = time.time()
    for run in range(runs):
        time.sleep(2 + n / 40)  # right after a burst of runs the server answers 503 and the client waits 2 s
        t = time.perf_counter()
        call(n, (run + 1) * 1_000_000)
        walls.append(time.perf_counter() - t)
    time.sleep(1.0)  # work the flows left to background threads (events, logs) is sampled too
    sampled = time.time() - started
spy.send_signal(signal.SIGINT)
_, err = spy.communicate(timeout=60)
print("PROFILE " + json.dumps({"walls": walls, "sampled_s": sampled, "spy_stderr": err.decode()[-500:]}), flush=True)
os._exit(0)
'''


def run_case(measure: str, variant: str, n: int, runs: int, rate: int, env: dict[str, str],
             folder: Path) -> dict[str, Any]:
    """Profile `runs` timed flows of one case in a fresh process; walls and the raw py-spy file."""
    cwd = folder / f"{measure}-{variant}"
    cwd.mkdir(parents=True, exist_ok=True)
    out = cwd / "profile.txt"
    command = [sys.executable, "-c", TARGET, measure, variant, str(n), str(runs), str(rate), str(out)]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**env, "DBND__RUN__DATA_ROOT": str(cwd / "data"), "BENCH_DIR": str(BENCH),
                               "PY_SPY": str(PY_SPY)})
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROFILE ")]
    if done.returncode != 0 or not lines or not out.exists():
        raise SystemExit(f"{measure}/{variant} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("PROFILE "):])
    result["raw"] = out
    return result


def categorize(raw: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """Samples per category, per (category, leaf-most dbnd/prefect frame) for detail, and the total."""
    patterns = [(name, re.compile(p)) for name, p in CATEGORIES]
    counts: collections.Counter = collections.Counter()
    detail: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        joined = ";" + stack
        total += count
        category = OTHER
        for name, pattern in patterns:
            if pattern.search(joined):
                category = name
                break
        counts[category] += count
        library = [f for f in frames if "(prefect/" in f or "(dbnd_prefect/" in f]
        leaf = re.sub(r":\d+\)$", ")", library[-1]) if library else (frames[-1] if frames else "?")
        detail[category, leaf] += count
    return counts, detail, total


def report(label: str, result: dict[str, Any], n: int, rate: int, top: int) -> list[str]:
    counts, detail, total = categorize(result["raw"])
    walls = result["walls"]
    wall_ms = sorted(walls)[len(walls) // 2] / n * 1000
    tasks = n * len(walls)
    per_task = lambda samples: samples / rate / tasks * 1000  # noqa: E731
    lines = [f"## {label}: {len(walls)} × {n} tasks; wall {wall_ms:.2f} ms/task (median run; runs "
             f"{', '.join(f'{w:.3f}' for w in walls)} s); GIL held {per_task(total):.2f} ms/task "
             f"({total} samples at {rate}/s)", "",
             "| where (first match in CATEGORIES) | ms/task | share | top frames (ms/task) |", "|---|---:|---:|---|"]
    for name, samples in counts.most_common():
        frames = sorted(((s, leaf) for (cat, leaf), s in detail.items() if cat == name), reverse=True)[:top]
        shown = "; ".join(f"`{leaf}` {per_task(s):.2f}" for s, leaf in frames)
        lines.append(f"| {name} | {per_task(samples):.2f} | {samples / total:.0%} | {shown} |")
    return lines


@contextlib.contextmanager
def _server(api_url: str | None, home: Path) -> Iterator[str]:
    if api_url:
        yield api_url
    else:
        with prefect_server(home) as url:
            yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", default=[], metavar="MEASURE:VARIANT",
                        help="chain or tasks : dbnd, dbnd_unversioned, dbnd_block (tasks), raw, raw_persist, raw_submit "
                             "(default: chain:dbnd and tasks:dbnd)")
    parser.add_argument("--runs", type=int, default=5, help="timed flows per case (default 5)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--top", type=int, default=4, help="frames shown per category")
    parser.add_argument("--api-url", default=None, help="use this Prefect API instead of starting a server")
    parser.add_argument("--keep-raw", default=None, help="copy py-spy's raw files into this folder")
    args = parser.parse_args(argv)
    cases = [c.split(":", 1) for c in (args.case or ["chain:dbnd", "tasks:dbnd"])]
    sizes = {"chain": 100, "tasks": 200}
    with temporary_home() as home, _server(args.api_url, home) as api_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DBND__")}
        env.update(QUIET_ENV, PREFECT_API_URL=api_url, PREFECT_HOME=str(home / "client-home"),
                   PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
                   PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p))
        output: list[str] = []
        for measure, variant in cases:
            n = sizes[measure]
            result = run_case(measure, variant, n, args.runs, args.rate, env, home / "profiles")
            if args.keep_raw:
                keep = Path(args.keep_raw)
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{measure}-{variant}.txt").write_text(result["raw"].read_text())
            label = f"{'chain' if measure == 'chain' else 'independent tasks'} / {variant}"
            output += report(label, result, n, args.rate, args.top) + [""]
            time.sleep(2)
    print("\n".join(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
