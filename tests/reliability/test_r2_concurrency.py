"""R2: 8 processes run the same pipeline on one data root at once (local disk, and S3 on moto).

Every process exits 0 with no traceback or ERROR line and returns the right results; every output file is
complete and matches its manifest; every cache record has its manifest; each process's run record lists every
task run as Completed or Cached; and an output written by several processes holds the same content whoever
wrote it last (each one is loaded and compared with the value computed here, without the library).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reliability.common import CHAIN, N_PARTS, N_TASK_RUNS, ROWS, aws_env, expected_totals
from tests.reliability.store_check import filesystem, inspect_root
from tests.reliability.zygote import Zygote

pytestmark = pytest.mark.slow

PROCESSES = 8
ARGS = [str(N_PARTS), str(CHAIN)]


def expected_frame(i: int, rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(i)
    return pd.DataFrame({"i": i, "x": rng.random(rows), "y": rng.integers(0, 1000, rows)})


def run_together(forks: Zygote, workdir: Path, root: str, env: dict[str, str]) -> dict:
    (workdir / "dbnd.toml").write_text(f'[run]\ndata_root = "{root}"\n')
    log = workdir / "notes.log"
    env = {**env, "RELIABILITY_LOG": str(log)}
    pids = [forks.start(workdir, ARGS, workdir / f"p{n}.out", env) for n in range(PROCESSES)]
    codes = [forks.wait(pid) for pid in pids]
    summaries = []
    for n, code in enumerate(codes):
        text = (workdir / f"p{n}.out").read_text()
        assert code == 0, f"process {n} exited with {code}:\n{text[-3000:]}"
        assert "Traceback" not in text and not re.search(r"\| (ERROR|CRITICAL) ", text), text[-3000:]
        summaries.append(json.loads(text.strip().splitlines()[-1]))

    expected = expected_totals()
    for summary in summaries:
        assert summary["totals"]["sum"] == pytest.approx(expected["sum"], rel=1e-12)
        assert len(summary["task_runs"]) == N_TASK_RUNS
        assert {e["state"] for e in summary["task_runs"]} <= {"Completed", "Cached"}, summary
    signatures = {e["signature"] for e in summaries[0]["task_runs"]}
    assert all({e["signature"] for e in s["task_runs"]} == signatures for s in summaries), "signatures differ"

    state = inspect_root(root)
    assert not state.problems, state.problems
    assert state.complete() == signatures and not state.orphans and not state.staging
    assert state.run_records == PROCESSES
    fs, _ = filesystem(root)
    for summary in summaries:  # each process's run record is whole and names every task run
        record_path = filesystem(f"{root}/.dbnd/runs/{summary['flow_run_id']}.json")[1]
        record = json.loads(fs.cat_file(record_path))
        assert record["state"] == "Completed" and len(record["task_runs"]) == N_TASK_RUNS, record
        assert {e["signature"] for e in record["task_runs"]} == signatures
    for manifest in state.manifests.values():  # whoever wrote an output last, it holds the one right value
        if manifest["task"] == "make_part":
            uri = filesystem(manifest["outputs"]["frame"]["uri"])[1]
            with fs.open(uri, "rb") as f:
                pd.testing.assert_frame_equal(pd.read_parquet(f), expected_frame(manifest["parameters"]["i"]))

    lines = log.read_text().splitlines()
    bodies = Counter(line.split(" ", 2)[2] for line in lines if " body " in line)
    return {"processes": PROCESSES, "task_runs": PROCESSES * N_TASK_RUNS,
            "bodies_run": sum(bodies.values()), "written_more_than_once": sum(1 for c in bodies.values() if c > 1),
            "cached": sum(e["state"] == "Cached" for s in summaries for e in s["task_runs"])}


def test_eight_processes_on_one_local_root(forks, tmp_path):
    stats = run_together(forks, tmp_path, str(tmp_path / "data"), {})
    print(f"\nR2 local: {json.dumps(stats)}")


def test_eight_processes_on_one_s3_root(forks, tmp_path, s3_bucket):
    stats = run_together(forks, tmp_path, f"s3://{s3_bucket}/shared", aws_env())
    print(f"\nR2 s3: {json.dumps(stats)}")
