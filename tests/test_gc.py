"""`dbnd gc`, `dbnd pin` and `dbnd unpin` against real runs, on a local root and on S3 (moto), GCS
(fake-gcs-server) and Azure (Azurite)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from pandas import DataFrame

from dbnd_prefect import pipeline, task
from dbnd_prefect.api.gc import gc
from tests.cli_asserts import ran, user_error
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd

NOW_ONLY = ["--older-than", "0s", "--set", "gc.grace=0s"]  # age alone keeps nothing


@task
def gc_load(raw: DataFrame) -> DataFrame:
    return raw.assign(total=raw["a"] + raw["b"])


@task
def gc_scale(frame: DataFrame, factor: int = 2) -> DataFrame:
    return frame.assign(scaled=frame["total"] * factor)


@task
def gc_summary(frame: DataFrame) -> dict:
    return {"rows": len(frame), "sum": int(frame["scaled"].sum())}


@pipeline
def gc_pipe(raw: DataFrame):
    return gc_summary(gc_scale(gc_load(raw)))


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))




def write_raw(workdir: Path) -> None:
    pd.DataFrame({"a": range(6), "b": range(10, 16)}).to_csv(workdir / "raw.csv", index=False)


def three_runs(workdir: Path) -> list[CmdResult]:
    write_raw(workdir)
    return [ran(dbnd("run", "gc_pipe", "--set", "raw=raw.csv", "--set", f"gc_scale.factor={f}")) for f in (2, 3, 4)]


def entry(result: CmdResult, task_name: str) -> dict:
    return next(e for e in result.run.task_runs if e["task"] == task_name)


def folder(result: CmdResult, task_name: str) -> Path:
    return Path(entry(result, task_name)["manifest"]).parent


def record(workdir: Path, result: CmdResult, task_name: str) -> Path:
    return workdir / "data" / ".dbnd" / "prefect-records" / entry(result, task_name)["signature"]


def snapshot(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def make_old(path: Path, hours: float = 3) -> None:
    then = time.time() - hours * 3600
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (then, then))


def test_gc_dry_run_changes_nothing_then_apply_removes_whole_versions(workdir):
    runs = three_runs(workdir)
    before = snapshot(workdir / "data")
    dry = ran(dbnd("gc", "--keep-last", "1", *NOW_ONLY))
    lines = dry.stdout.splitlines()
    assert lines[0].startswith(f"dbnd gc under {workdir / 'data'} (env local, dry run, nothing removed)")
    assert "gc_scale: would remove 2 of 3 version(s), " in dry.stdout
    assert "gc_summary: would remove 2 of 3 version(s), " in dry.stdout
    assert "gc_load: would remove 0 of 1 version(s), 0 B" in lines
    assert lines[-1].startswith("would remove 4 version(s) and 0 orphan(s), freeing ")
    assert snapshot(workdir / "data") == before  # a dry run changes nothing

    report = json.loads(ran(dbnd("gc", "--keep-last", "1", "--json", *NOW_ONLY)).stdout)
    removed = {v["signature"] for t in report["tasks"].values() for v in t["remove"]}
    assert removed == {entry(r, n)["signature"] for r in runs[:2] for n in ("gc_scale", "gc_summary")}
    freed = sum(p.stat().st_size for r in runs[:2] for n in ("gc_scale", "gc_summary")
                for p in folder(r, n).rglob("*") if p.is_file())
    assert report["bytes"] == freed and report["removed_versions"] == 4 and report["applied"] is False

    applied = ran(dbnd("gc", "--keep-last", "1", "--apply", *NOW_ONLY))
    assert applied.stdout.splitlines()[-1].startswith("removed 4 version(s) and 0 orphan(s), freed ")
    for result in runs[:2]:
        for name in ("gc_scale", "gc_summary"):
            assert not folder(result, name).exists() and not record(workdir, result, name).exists()
    for name in ("gc_load", "gc_scale", "gc_summary"):  # the newest stay whole, still reused
        assert folder(runs[2], name).exists() and record(workdir, runs[2], name).exists()
    again = ran(dbnd("run", "gc_pipe", "--set", "raw=raw.csv", "--set", "gc_scale.factor=4"))
    assert {e["state"] for e in again.run.task_runs} == {"Cached"}
    plan = ran(dbnd("plan", "gc_pipe", "--set", "raw=raw.csv", "--set", "gc_scale.factor=2")).stdout
    assert "gc_scale  [miss]" in plan and "stale" not in plan  # removed whole: never a half-valid version
    assert ran(dbnd("gc", "--keep-last", "1", *NOW_ONLY)).stdout.splitlines()[-1].startswith("would remove 0 version(s)")


def test_pins_grace_and_lineage_keep_versions(workdir):
    runs = three_runs(workdir)
    fresh = json.loads(ran(dbnd("gc", "--keep-last", "0", "--older-than", "0s", "--json")).stdout)
    assert fresh["removed_versions"] == 0  # made within the default grace period (1 h)
    assert {v["kept"] for t in fresh["tasks"].values() for v in t["keep"]} == {"created or used within the grace period"}

    first = runs[0].run.flow_run_id
    pinned = ran(dbnd("pin", f"gc_summary.result@run:{first[:8]}"))
    summary_sig = entry(runs[0], "gc_summary")["signature"]
    assert pinned.stdout.strip() == f"pinned gc_summary {summary_sig[:16]} (gc_summary.result@run:{first[:8]}) " \
                                    f"under {workdir / 'data'}"
    assert (workdir / "data" / ".dbnd" / "pins" / f"{summary_sig}.json").is_file()
    report = json.loads(ran(dbnd("gc", "--keep-last", "0", "--json", *NOW_ONLY)).stdout)
    kept = {v["signature"]: v["kept"] for t in report["tasks"].values() for v in t["keep"]}
    scale_sig = entry(runs[0], "gc_scale")["signature"]
    load_sig = entry(runs[0], "gc_load")["signature"]
    assert kept == {summary_sig: "pinned", scale_sig: f"input of gc_summary {summary_sig[:16]}",
                    load_sig: f"input of gc_scale {scale_sig[:16]}"}  # upstream across tasks
    assert report["removed_versions"] == 4

    for name in ("gc_scale", "gc_summary"):  # the second run's versions: made 3 h ago, unused since
        made = folder(runs[1], name)
        document = json.loads((made / "_manifest.json").read_text())
        document["ended"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)).isoformat()
        (made / "_manifest.json").write_text(json.dumps(document))
        make_old(made)
    for run_record in (workdir / "data" / ".dbnd" / "runs").glob("*.json"):
        make_old(run_record)

    def kept_in_grace() -> dict[str, str]:
        report = json.loads(ran(dbnd("gc", "--keep-last", "0", "--older-than", "0s", "--json")).stdout)
        return {v["signature"]: v["kept"] for t in report["tasks"].values() for v in t["keep"]}

    second = entry(runs[1], "gc_scale")["signature"]
    assert second not in kept_in_grace()
    used = ran(dbnd("run", "gc_pipe", "--set", "raw=raw.csv", "--set", "gc_scale.factor=3"))  # reused: used now
    assert {e["state"] for e in used.run.task_runs} == {"Cached"}
    assert kept_in_grace()[second] == "created or used within the grace period"

    ran(dbnd("unpin", f"@{summary_sig[:8]}"))
    assert not (workdir / "data" / ".dbnd" / "pins" / f"{summary_sig}.json").exists()
    gone = ran(dbnd("gc", "--keep-last", "0", "--apply", *NOW_ONLY))
    assert gone.stdout.splitlines()[-1].startswith("removed 7 version(s)")
    assert not [p for p in (workdir / "data" / "local").rglob("*") if p.is_file()]
    assert not (workdir / "data" / "local").exists() or not any((workdir / "data" / "local").iterdir())


def test_orphans_older_than_the_grace_period_are_removed(workdir):
    runs = three_runs(workdir)
    kept = folder(runs[2], "gc_scale")
    crashed = kept.parent / "gc_scale_0123456789abcdef"
    crashed.mkdir()
    (crashed / "result.parquet").write_bytes(b"x" * 100)
    staging = kept / ".result.parquet.0123456789ab.tmp"
    staging.write_bytes(b"y" * 10)
    unsaved = kept / "result.unsaved.pkl"
    unsaved.write_bytes(b"z" * 20)
    young = kept / ".other.parquet.ba9876543210.tmp"
    young.write_bytes(b"w")
    corrupt = kept.parent / "gc_scale_fedcba9876543210"  # a manifest the store could not give back whole
    corrupt.mkdir()
    (corrupt / "result.parquet").write_bytes(b"v" * 5)
    (corrupt / "_manifest.json").write_text('{"task": "gc_scale", "sig')
    for path in (crashed, staging, unsaved, corrupt):
        make_old(path)
    report = json.loads(ran(dbnd("gc", "--json")).stdout)
    orphans = {o["uri"]: (o["kind"], o["bytes"]) for o in report["orphans"]}
    assert orphans == {str(crashed): ("no manifest (a crashed or unfinished run)", 100),
                       str(staging): ("staging left by an interrupted write", 10),
                       str(unsaved): ("value kept by a failed write", 20)}
    assert report["removed_versions"] == 0 and report["bytes"] == 130
    shown = ran(dbnd("gc")).stdout
    assert "orphans: 3, 130 B" in shown and f"no manifest (a crashed or unfinished run): {crashed}" in shown
    assert f"left alone: {corrupt}: unreadable manifest, left alone" in shown.splitlines()
    applied = ran(dbnd("gc", "--apply")).stdout.splitlines()[-1]
    assert applied == "removed 0 version(s) and 3 orphan(s), freed 130 B; left 1 alone (see above)"
    assert not crashed.exists() and not staging.exists() and not unsaved.exists() and corrupt.exists()
    assert young.exists() and (kept / "result.parquet").exists() and (kept / "_manifest.json").exists()


def test_gc_defaults_come_from_the_gc_section_and_modules_narrow_it(workdir):
    runs = three_runs(workdir)
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "data"\n\n[gc]\nkeep_last = 2\nolder_than = "0s"\n'
                                       'grace = "0s"\n')
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    report = json.loads(ran(dbnd("gc", "--json")).stdout)
    assert report["keep_last"] == 2 and report["removed_versions"] == 2
    assert json.loads(ran(dbnd("gc", "--json", "--keep-last", "3")).stdout)["removed_versions"] == 0
    narrowed = json.loads(ran(dbnd("gc", "--json", "-m", "tests.test_gc", "--keep-last", "1")).stdout)
    assert narrowed["removed_versions"] == 4
    other = json.loads(ran(dbnd("gc", "--json", "-m", "tests.counted_chain", "--keep-last", "0")).stdout)
    assert other["removed_versions"] == 0 and other["tasks"] == {}
    python = gc(str(workdir / "data"), "local", keep_last=1, older_than="0s", grace="0s")
    assert len(python.removed) == 4 and not python.applied
    assert {v.signature for v in python.removed} == {entry(r, n)["signature"] for r in runs[:2]
                                                     for n in ("gc_scale", "gc_summary")}


def test_gc_and_pin_mistakes_are_one_line_and_exit_2(workdir):
    three_runs(workdir)
    user_error(dbnd("gc", "--older-than", "soon"), "--older-than", "'soon' is not a duration")
    user_error(dbnd("gc", "--keep-last", "-1"), "--keep-last", "not a count")
    user_error(dbnd("gc", "--set", "gc.grace=forever"), "gc.grace", "--set gc.grace=forever")
    user_error(dbnd("pin", "gc_scale"), "'gc_scale' is not a version selector", "TASK.OUTPUT@latest")
    user_error(dbnd("pin", "gc_scale.result@run:0000dead"), "flow run 0000dead")
    user_error(dbnd("pin", "@ffffffffff"), "@ffffffffff: no stored version")
    user_error(dbnd("unpin", "gc_scale.result@latest"), "no pinned version matches")
    assert not (workdir / "data" / ".dbnd" / "pins").exists()


@pytest.mark.parametrize("store", ["s3", "gs", "az"])
def test_gc_on_object_stores(workdir, store, request):
    """The same lineage-safe removal on moto S3, fake-gcs-server and Azurite: each version goes whole (outputs,
    manifest, Prefect cache record), a dry run changes nothing, and the kept versions are still reused."""
    from dbnd_prefect.targets import register_storage_options
    from dbnd_prefect.targets.filesystem import filesystem_for_uri

    bucket = request.getfixturevalue({"s3": "s3_bucket", "gs": "gcs_bucket", "az": "az_container"}[store])
    if store == "gs":  # the emulator takes no credentials
        register_storage_options("gs", {"token": "anon"})
        request.addfinalizer(lambda: register_storage_options("gs", {}))
    root = f"{store}://{bucket}/lake"
    (workdir / "dbnd.toml").write_text(f'[run]\ndata_root = "{root}"\n')
    from dbnd_prefect.config import reset_config_cache

    reset_config_cache()
    write_raw(workdir)
    runs = [ran(dbnd("run", "gc_pipe", "--set", "raw=raw.csv", "--set", f"gc_scale.factor={f}")) for f in (2, 3)]

    def keys() -> set[str]:
        fs, path = filesystem_for_uri(root)
        fs.invalidate_cache()
        return {k.split("/", 1)[1] for k in fs.find(path)}

    before = keys()
    old_scale = entry(runs[0], "gc_scale")
    assert f"lake/.dbnd/prefect-records/{old_scale['signature']}" in before
    report = json.loads(ran(dbnd("gc", "--keep-last", "1", "--json", *NOW_ONLY)).stdout)
    assert report["removed_versions"] == 2 and keys() == before
    ran(dbnd("gc", "--keep-last", "1", "--apply", *NOW_ONLY))
    after = keys()
    gone = before - after
    for name in ("gc_scale", "gc_summary"):
        signature = entry(runs[0], name)["signature"]
        assert f"lake/.dbnd/prefect-records/{signature}" in gone
        assert not [k for k in after if f"{name}_{signature[:16]}/" in k]
        assert [k for k in after if f"{name}_{entry(runs[1], name)['signature'][:16]}/_manifest.json" in k]
    again = ran(dbnd("run", "gc_pipe", "--set", "raw=raw.csv", "--set", "gc_scale.factor=3"))
    assert {e["state"] for e in again.run.task_runs} == {"Cached"}
