"""`dbnd plan`, `dbnd versions`, `dbnd reproduce` and version selectors, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from pandas import DataFrame

from dbnd_prefect import pipeline, task
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd
from tests.conftest import REPO


@task
def ver_load(raw: DataFrame) -> DataFrame:
    """Add a total column."""
    return raw.assign(total=raw["a"] + raw["b"])


@task
def ver_scale(frame: DataFrame, factor: int = 2) -> DataFrame:
    return frame.assign(scaled=frame["total"] * factor)


@task
def ver_summary(frame: DataFrame) -> dict:
    return {"rows": int(len(frame)), "sum": int(frame["scaled"].sum())}


@pipeline
def ver_pipe(raw: DataFrame):
    return ver_summary(ver_scale(ver_load(raw)))


@task
def ver_noise(frame: DataFrame) -> DataFrame:
    return frame.assign(noise=np.random.default_rng().random(len(frame)))


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))


def write_raw(workdir: Path, rows: int = 6) -> Path:
    path = workdir / "raw.csv"
    pd.DataFrame({"a": range(rows), "b": range(10, 10 + rows)}).to_csv(path, index=False)
    return path


def ran(result: CmdResult) -> CmdResult:
    assert result.exit_code == 0, result.stderr[-3000:]
    return result


def assert_user_error(result: CmdResult, *expected: str) -> str:
    """Exit code 2, one line on stderr naming the problem, no traceback, nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result
    assert len(lines) == 1 and lines[0].startswith("dbnd: error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def planned(stdout: str) -> dict[str, tuple[str, str]]:
    """Task -> (status, why) from `dbnd plan` output."""
    found: dict[str, tuple[str, str]] = {}
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if "  [" in line and "]  signature " in line:
            name, status = line.split("  [", 1)
            assert lines[i + 1].startswith("    why: ")
            found[name] = (status.split("]", 1)[0], lines[i + 1][len("    why: "):])
    return found


def manifest_of(result: CmdResult, task_name: str) -> dict:
    entry = next(e for e in result.run.task_runs if e["task"] == task_name)
    return json.loads(Path(entry["manifest"]).read_text())


def stored_files(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "data").rglob("*") if p.is_file() and ".dbnd" not in p.parts] \
        if (workdir / "data").exists() else []


# ----- plan --------------------------------------------------------------------------------------


def test_plan_says_what_would_run_and_why_before_and_after_a_run(workdir):
    write_raw(workdir)
    before = ran(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv"))
    assert before.stdout.splitlines()[0] == (
        f"pipeline ver_pipe: 3 task run(s) (env local, data root {workdir / 'data'}); nothing was run")
    assert planned(before.stdout) == {name: ("miss", "never ran in this environment")
                                      for name in ("ver_load", "ver_scale", "ver_summary")}
    assert before.stdout.splitlines()[-1] == "would reuse 0 task run(s) and run 3 (3 miss)"
    assert stored_files(workdir) == [] and before.run.task_runs == []

    first = ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv"))
    after = ran(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv"))
    assert {s for s, _ in planned(after.stdout).values()} == {"hit"}
    assert planned(after.stdout)["ver_scale"][1] == "outputs stored with this signature verify"
    assert after.stdout.splitlines()[-1] == "would reuse 3 task run(s) and run 0"
    summary_out = next(e for e in first.run.task_runs if e["task"] == "ver_summary")["outputs"]["result"]
    assert f"    -> result: {summary_out}" in after.stdout.splitlines()

    changed = planned(ran(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv", "--set", "ver_scale.factor=3")).stdout)
    assert changed["ver_load"][0] == "hit"
    assert changed["ver_scale"] == ("miss", "parameter 'factor' changed")
    assert changed["ver_summary"] == ("miss", "input 'frame' changed (its upstream task's signature changed)")

    Path(summary_out).unlink()
    gone = planned(ran(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv")).stdout)
    assert gone["ver_summary"] == ("stale", f"output 'result' is missing at {summary_out}")
    assert gone["ver_scale"][0] == "hit"

    write_raw(workdir, rows=9)  # edited in place: same path, new content
    edited = planned(ran(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv")).stdout)
    assert edited["ver_load"] == ("miss", "input 'raw' changed on storage")
    assert not Path(summary_out).exists()  # planning recomputed nothing


def test_run_describe_prints_the_same_plan(workdir):
    write_raw(workdir)
    ran(dbnd("run", "ver_load", "--set", "raw=raw.csv"))
    plan = ran(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv", "--set", "ver_scale.factor=5"))
    describe = ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv", "--set", "ver_scale.factor=5", "--describe"))
    assert plan.stdout == describe.stdout
    assert [s for s, _ in planned(plan.stdout).values()] == ["hit", "miss", "miss"]
    assert "    factor = 5" in plan.stdout.splitlines()


def test_plan_input_mistakes_are_one_line_and_exit_2(workdir):
    write_raw(workdir)
    assert_user_error(dbnd("plan", "ver_pipez", "--set", "raw=raw.csv"), "unknown task or pipeline 'ver_pipez'")
    assert_user_error(dbnd("plan", "ver_pipe", "--set", "raw=missing.csv"), "input file not found", "missing.csv")
    assert_user_error(dbnd("plan", "ver_pipe", "--set", "raw=raw.csv", "--set", "ver_scale.factor=many"),
                      "ver_scale.factor", "expects an integer")
    assert_user_error(dbnd("plan"), "TASK")
    assert stored_files(workdir) == []


# ----- versions ----------------------------------------------------------------------------------


def _size(count: int) -> str:
    assert 1024 <= count < 1024 ** 2, count  # small parquet files: shown in KiB
    return f"{count / 1024:.1f} KiB"


def test_versions_lists_stored_runs_newest_first(workdir):
    write_raw(workdir)
    none = ran(dbnd("versions", "ver_scale"))
    assert none.stdout.strip() == f"no stored versions of ver_scale under {workdir / 'data'} (env local)"

    runs = [ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv", "--set", f"ver_scale.factor={factor}"))
            for factor in (2, 3)]
    listing = ran(dbnd("versions", "ver_scale")).stdout.splitlines()
    assert listing[0] == f"ver_scale: 2 stored version(s) under {workdir / 'data'} (env local), newest first"
    assert listing[1].split() == ["ENDED", "(UTC)", "SIGNATURE", "FLOW", "RUN", "SIZE", "PARAMETERS"]
    rows = listing[2:4]
    for row, result in zip(rows, reversed(runs)):  # newest first
        manifest = manifest_of(result, "ver_scale")
        output = Path(manifest["outputs"]["result"]["uri"])
        assert manifest["prefect"]["flow_run_id"] == result.run.flow_run_id
        cells = row.split()
        assert cells[0] == manifest["ended"][:10]
        size = _size(output.stat().st_size)
        assert cells[2:6] == [manifest["signature"][:16], result.run.flow_run_id, *size.split()]
        assert row.rstrip().endswith(f"factor={manifest['parameters']['factor']}")
    assert rows[0].rstrip().endswith("factor=3") and rows[1].rstrip().endswith("factor=2")
    assert listing[4].startswith("use one as a data parameter: --set TASK.PARAM=ver_scale.result@latest")

    one = ran(dbnd("versions", "ver_summary", "result")).stdout.splitlines()
    assert one[0].startswith("ver_summary.result: 2 stored version(s)")
    newest = manifest_of(runs[1], "ver_summary")["outputs"]["result"]
    assert one[2].endswith(newest["uri"]) and f" {newest['bytes']} B " in one[2]  # a small JSON file

    by_path = ran(dbnd("versions", "tests.test_cli_versioning.ver_scale"))
    assert by_path.stdout.splitlines()[0].startswith("ver_scale: 2 stored version(s)")


def test_versions_mistakes_are_one_line_and_exit_2(workdir):
    write_raw(workdir)
    ran(dbnd("run", "ver_load", "--set", "raw=raw.csv"))
    assert_user_error(dbnd("versions", "ver_load", "reslt"), "no stored output 'reslt'", "did you mean 'result'?")
    assert_user_error(dbnd("versions", "no_such_task"), "unknown task or pipeline 'no_such_task'")


# ----- version selectors -------------------------------------------------------------------------


def test_selectors_pick_stored_outputs_for_data_parameters(workdir):
    write_raw(workdir)
    first = ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv"))
    second = ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv", "--set", "ver_scale.factor=10"))
    first_uri = manifest_of(first, "ver_scale")["outputs"]["result"]["uri"]
    latest_uri = manifest_of(second, "ver_scale")["outputs"]["result"]["uri"]

    latest = ran(dbnd("run", "ver_summary", "--set", "frame=ver_scale.result@latest"))
    assert manifest_of(latest, "ver_summary")["inputs"][0]["uri"] == latest_uri
    assert latest.run and json.loads(Path(latest.run.task_runs[0]["outputs"]["result"]).read_text()) \
        == {"rows": 6, "sum": 10 * (sum(range(6)) + sum(range(10, 16)))}

    prefix = first.run.flow_run_id[:8]
    pinned = ran(dbnd("run", "ver_summary", "--set", f"ver_summary.frame=ver_scale.result@run:{prefix}"))
    assert manifest_of(pinned, "ver_summary")["inputs"][0]["uri"] == first_uri
    assert json.loads(Path(pinned.run.task_runs[0]["outputs"]["result"]).read_text())["sum"] == \
        2 * (sum(range(6)) + sum(range(10, 16)))

    shown = ran(dbnd("plan", "ver_summary", "--set", f"frame=ver_scale.result@run:{prefix}"))
    signature = manifest_of(pinned, "ver_summary")["signature"][:16]  # the run above, on the first run's output
    assert f"ver_summary  [hit]  signature {signature}" in shown.stdout.splitlines()


def test_selector_mistakes_are_one_line_and_exit_2(workdir):
    write_raw(workdir)
    assert_user_error(dbnd("run", "ver_summary", "--set", "frame=ver_scale.result@latest"),
                      "ver_summary.frame", "no stored outputs of task 'ver_scale'", "dbnd versions ver_scale")
    ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv"))
    assert_user_error(dbnd("run", "ver_summary", "--set", "frame=ver_scale.result@run:0000dead"),
                      "ver_summary.frame", "flow run 0000dead")
    assert_user_error(dbnd("run", "ver_summary", "--set", "frame=ver_scale.scaled@latest"),
                      "no stored output 'scaled'")


# ----- reproduce ---------------------------------------------------------------------------------


def test_reproduce_a_deterministic_pipeline_matches(workdir):
    write_raw(workdir)
    original = ran(dbnd("run", "ver_pipe", "--set", "raw=raw.csv", "--set", "ver_scale.factor=4"))
    run_id = original.run.flow_run_id
    originals = {e["task"]: e["outputs"]["result"] for e in original.run.task_runs}
    result = dbnd("reproduce", run_id[:12])
    assert result.exit_code == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"reproduced flow run {run_id[:12]}: 3 of 3 output(s) match their recorded checksum"
    cells = [line.split() for line in lines[1:]]
    assert [c[:2] for c in cells] == [["ver_load.result", "match"], ["ver_scale.result", "match"],
                                      ["ver_summary.result", "match"]]
    for task_name, c in zip(("ver_load", "ver_scale", "ver_summary"), cells):
        assert c[-1] != originals[task_name] and Path(c[-1]).exists()  # really written again, elsewhere
        assert Path(c[-1]).read_bytes() == Path(originals[task_name]).read_bytes()


def test_reproduce_reports_a_differing_output_and_exits_1(workdir):
    write_raw(workdir)
    original = ran(dbnd("run", "ver_noise", "--set", "frame=raw.csv"))
    result = dbnd("reproduce", original.run.flow_run_id)
    assert result.exit_code == 1, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": 0 of 1 output(s) match their recorded checksum")
    was = manifest_of(original, "ver_noise")["outputs"]["result"]["checksum"][:16]
    assert lines[1].split()[:4] == ["ver_noise.result", "DIFFERS", "was", f"{was},"]


def test_reproduce_mistakes_are_one_line_and_exit_2(workdir):
    write_raw(workdir)
    assert_user_error(dbnd("reproduce", "0123abcd"), "no recorded task runs for flow run '0123abcd'",
                      str(workdir / "data"))
    assert_user_error(dbnd("reproduce", "not-a-run"), "'not-a-run' is not a Prefect flow run id")


# ----- the console script ------------------------------------------------------------------------


def test_console_script_plans_the_wine_quality_pipeline_after_a_run(workdir):
    from flows.sample_data import wine_quality_frame

    wine_quality_frame(rows=40).to_csv(workdir / "wine.csv", index=False)
    ran(dbnd("run", "flows.wine_quality.predict_wine_quality", "--set", "raw_data=wine.csv"))
    dbnd_script = Path(sys.executable).parent / "dbnd"
    proc = subprocess.run(
        [str(dbnd_script), "plan", "predict_wine_quality", "-m", "flows.wine_quality", "--set", "raw_data=wine.csv",
         "--set", "train_model.alpha=0.2"],
        cwd=workdir, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert planned(proc.stdout) == {
        "fetch_data": ("hit", "outputs stored with this signature verify"),
        "split_data": ("hit", "outputs stored with this signature verify"),
        "train_model": ("miss", "parameter 'alpha' changed"),
        "validate_model": ("miss", "input 'model' changed (its upstream task's signature changed)"),
    }
    assert proc.stdout.splitlines()[-1] == "would reuse 2 task run(s) and run 2 (2 miss)"
    assert "Traceback" not in proc.stderr
