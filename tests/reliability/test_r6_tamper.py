"""R6: a reused output, its manifest or its cache record is edited in place, truncated, replaced by another
valid file, or deleted between two runs (local root, and S3 on moto for the object-store cases).

Each case runs the counted chain (load_rows -> scale -> summarize x2), tampers with one stored file, runs it
again and asserts: the results are the right ones (corrupt data never returned), the tampered task run's
body ran again, a warning named the task (except for a deleted cache record, which is a plain miss: there is
nothing wrong to report, the outputs are recomputed and rewritten identically), the data root verifies
afterwards (tests/reliability/store_check.py, without the library) and a third run reuses everything.
A cache record is edited at one fixed byte of each kind it has (envelope, digest, key, serializer, Prefect's
metadata, the pickled outputs, the last byte), so each case flips the same byte on every run; every byte of a
record is flipped in tests/test_record_store.py. A record naming another serializer is refused even when its
digest was recomputed, and one written before records were sealed is recomputed without a warning.
Also: a version selector (`scale.result@latest`) naming a tampered output is refused, never loaded.
tests/test_versioning.py already covers a locally deleted output and a changed-size parquet output.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import xxhash

from dbnd_prefect.config import config_context
from dbnd_prefect.context import last_run
from tests.counted_chain import calls, chain
from tests.reliability.store_check import filesystem, inspect_root

pytestmark = pytest.mark.slow

RIGHT = ({"rows": 3, "total": 12.0}, {"rows": 3, "total": 6.0})


class Root:
    """A data root's files as an outsider reaches them (os for local paths, s3fs for S3), by URI."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, _ = filesystem(root)

    def path(self, uri: str) -> str:
        return filesystem(uri)[1]

    def read(self, uri: str) -> bytes:
        return self.fs.cat_file(self.path(uri))

    def write(self, uri: str, data: bytes) -> None:
        self.fs.pipe_file(self.path(uri), data)

    def delete(self, uri: str) -> None:
        self.fs.rm_file(self.path(uri))

    def edit_in_place(self, uri: str, data: bytes) -> None:
        """Overwrite the same file (same inode on local disk; an object store can only replace an object)."""
        if "://" in self.root:
            self.write(uri, data)
            return
        with open(uri, "r+b") as f:
            f.write(data)
            f.truncate()


def record_uri(root: str, signature: str) -> str:
    return f"{root}/.dbnd/prefect-records/{signature}"


def flip_middle_byte(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1:]


def flip_at(data: bytes, offset: int, xor: int = 0x55) -> bytes:
    return data[:offset] + bytes([data[offset] ^ xor]) + data[offset + 1:]


def after(data: bytes, marker: bytes, skip: int = 0) -> int:
    """The offset `skip` bytes past `marker` in a record (which must contain it)."""
    return data.index(marker) + len(marker) + skip


# Where a byte of a cache record is flipped: one place of each kind the record has (see record_store.py), the
# pickled outputs where the old unsealed records let a flip through (base64 ignores what it does not know)
RECORD_PLACES: dict[str, Callable[[bytes], int]] = {
    "first byte": lambda d: 0,
    "envelope head": lambda d: after(d, b'{"dbnd_'),
    "digest": lambda d: after(d, b'"xxh3_128":"', 7),
    "record key": lambda d: after(d, b'"storage_key":"prefect-records/', 3),
    "serializer name": lambda d: after(d, b'"serializer":{"type":"', 1),
    "Prefect version": lambda d: after(d, b'"prefect_version":"', 2),
    "storage block id": lambda d: after(d, b'"storage_block_id":"', 5),
    "pickled outputs, first byte": lambda d: after(d, b'"result":"'),
    "pickled outputs, middle": lambda d: (after(d, b'"result":"') + len(d)) // 2,
    "pickled outputs, their own digest": lambda d: after(d, b'"result":"', 5),
    "last byte": lambda d: len(d) - 1,
}


def flip_record(place: str) -> "Tamper":
    def action(root: Root, entry: dict) -> None:
        uri = record_uri(root.root, entry["signature"])
        data = root.read(uri)
        root.edit_in_place(uri, flip_at(data, RECORD_PLACES[place](data)))
    return action


def reseal(record: bytes) -> bytes:
    """A record written as dbnd writes it (the envelope and digest documented in record_store.py)."""
    return (b'{"dbnd_record":1,"xxh3_128":"' + xxhash.xxh3_128_hexdigest(record).encode() + b'","record":'
            + record + b"}")


def other_serializer(root: Root, entry: dict) -> None:
    """The record made to name cloudpickle, with a digest that matches (what a forger would do)."""
    uri = record_uri(root.root, entry["signature"])
    record = json.loads(root.read(uri))["record"]
    record["metadata"]["serializer"] = {"type": "pickle", "picklelib": "cloudpickle", "picklelib_version": None}
    root.write(uri, reseal(json.dumps(record, separators=(",", ":")).encode()))


def same_size_frame(original: bytes) -> bytes:
    """Another valid parquet file with the same schema, metadata and size, but other values."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(original))
    column = table.schema.get_field_index("x")
    values = table.column("x").to_pylist()
    # one value changed at a time: snappy and the statistics then mostly keep their size
    candidates = [values[:i] + [values[i] * k] + values[i + 1:] for k in (-1, 2, -2, 3, 4, 10, 0.5)
                  for i in range(len(values))]
    for candidate in candidates:
        changed = table.set_column(column, table.schema.field(column),
                                   pa.chunked_array([pa.array(candidate, pa.float64())]))
        buffer = io.BytesIO()
        pq.write_table(changed, buffer)
        if len(buffer.getvalue()) == len(original) and buffer.getvalue() != original:
            return buffer.getvalue()
    raise AssertionError("no same-size parquet file found")


def same_size_json(original: bytes) -> bytes:
    replaced = original.replace(b"12.0", b"99.0")
    assert replaced != original and len(replaced) == len(original)
    json.loads(replaced)
    return replaced


# case -> (task whose stored file is tampered with, what is done to the data root)
Tamper = Callable[[Root, dict], None]


def _output(entry: dict) -> str:
    return entry["outputs"]["result"]


def _manifest(entry: dict) -> str:
    return entry["manifest"]


CASES: dict[str, tuple[str, Tamper]] = {
    "output edited in place (same size)": ("scale", lambda r, e: r.edit_in_place(_output(e), flip_middle_byte(r.read(_output(e))))),
    "output truncated": ("scale", lambda r, e: r.edit_in_place(_output(e), r.read(_output(e))[:100])),
    "output replaced by another valid file of the same size (parquet)":
        ("scale", lambda r, e: r.write(_output(e), same_size_frame(r.read(_output(e))))),
    "output replaced by another valid file of the same size (json)":
        ("summarize", lambda r, e: r.write(_output(e), same_size_json(r.read(_output(e))))),
    "output deleted": ("scale", lambda r, e: r.delete(_output(e))),
    "manifest edited in place (signature)": ("scale", lambda r, e: r.edit_in_place(
        _manifest(e), r.read(_manifest(e)).replace(e["signature"].encode(), e["signature"][::-1].encode()))),
    "manifest edited in place (output size)": ("scale", lambda r, e: r.edit_in_place(
        _manifest(e), r.read(_manifest(e)).replace(b'"bytes": ', b'"bytes": 1', 1))),
    "manifest truncated": ("scale", lambda r, e: r.edit_in_place(_manifest(e), r.read(_manifest(e))[:50])),
    "manifest replaced by another task run's manifest": ("scale", None),  # needs two entries: see below
    "manifest deleted": ("scale", lambda r, e: r.delete(_manifest(e))),
    **{f"cache record edited in place ({place})": ("scale", flip_record(place)) for place in RECORD_PLACES},
    "cache record naming another serializer (digest recomputed)": ("scale", other_serializer),
    "cache record truncated": ("scale", lambda r, e: r.edit_in_place(
        record_uri(r.root, e["signature"]), r.read(record_uri(r.root, e["signature"]))[:200])),
    "cache record replaced by another task run's record": ("scale", None),
    "cache record deleted": ("scale", lambda r, e: r.delete(record_uri(r.root, e["signature"]))),
}
S3_CASES = ["output replaced by another valid file of the same size (json)", "output truncated",
            "manifest replaced by another task run's manifest", "cache record truncated",
            "cache record edited in place (pickled outputs, middle)"]


def tamper(case: str, root: Root, entries: dict[str, dict]) -> None:
    task, action = CASES[case]
    victim = entries[task]
    if case == "manifest replaced by another task run's manifest":
        root.write(_manifest(victim), root.read(_manifest(entries["load_rows"])))
    elif case == "cache record replaced by another task run's record":
        other = record_uri(root.root, entries["load_rows"]["signature"])
        root.write(record_uri(root.root, victim["signature"]), root.read(other))
    else:
        action(root, victim)


def check_case(case: str, data_root: str, caplog: pytest.LogCaptureFixture) -> None:
    root = Root(data_root)
    assert chain("raw.csv") == RIGHT
    entries = {}
    for entry in last_run().task_runs:
        if entry["task"] != "summarize" or entry["outputs"]["result"].endswith(".json") and not entries.get("summarize"):
            entries.setdefault(entry["task"], entry)
    # the summarize run whose output is {"rows": 3, "total": 12.0}
    entries["summarize"] = next(e for e in last_run().task_runs if e["task"] == "summarize"
                                and json.loads(root.read(_output(e))) == RIGHT[0])
    task = CASES[case][0]
    before = dict(calls)
    tamper(case, root, entries)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        assert chain("raw.csv") == RIGHT, f"{case}: corrupt data returned"
    assert calls[task] == before[task] + 1, f"{case}: task '{task}' was not recomputed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if case != "cache record deleted":
        assert any(f"'{task}'" in w for w in warnings), f"{case}: no warning naming '{task}': {warnings}"
    state = inspect_root(data_root)
    assert not state.problems, f"{case}: {state.problems}"
    after = dict(calls)
    assert chain("raw.csv") == RIGHT and calls == after, f"{case}: the repaired version is not reused"


@pytest.mark.parametrize("case", list(CASES))
def test_tampered_local_version_is_detected_and_recomputed(case, raw_csv, workdir, caplog):
    check_case(case, str(workdir / "data"), caplog)


@pytest.mark.parametrize("case", S3_CASES)
def test_tampered_s3_version_is_detected_and_recomputed(case, raw_csv, s3_bucket, caplog):
    root = f"s3://{s3_bucket}/tamper"
    with config_context({"run.data_root": root}):
        check_case(case, root, caplog)


def test_same_size_edit_with_the_old_mtime_is_caught_by_full_verification(raw_csv, workdir, caplog):
    """`run.verify = "full"` re-hashes every reused output: an edit that keeps size and modification time
    (which the default `fast` check trusts) is caught."""
    assert chain("raw.csv") == RIGHT
    entry = next(e for e in last_run().task_runs if e["task"] == "summarize")
    path = Path(_output(entry))
    stat = path.stat()
    original = path.read_bytes()
    forged = original.replace(b"12.0", b"99.0") if b"12.0" in original else original.replace(b"6.0", b"7.0")
    assert forged != original and len(forged) == len(original)
    path.write_bytes(forged)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with config_context({"run.verify": "full"}), caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        assert chain("raw.csv") == RIGHT
    assert calls["summarize"] == 3
    assert any("summarize" in r.getMessage() for r in caplog.records)


def test_selector_naming_a_tampered_output_is_refused(raw_csv, workdir):
    from dbnd_prefect import task
    from dbnd_prefect.errors import DbndError

    @task
    def total_of(frame: pd.DataFrame) -> float:
        return float(frame["x"].sum())

    chain("raw.csv")
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    Root(str(workdir / "data")).write(_output(entry), same_size_frame(Path(_output(entry)).read_bytes()))
    with pytest.raises(DbndError, match=r"scale\.result@latest.*(changed|checksum)"):
        total_of("scale.result@latest")


def test_a_cache_record_written_before_records_were_sealed_is_recomputed_without_a_warning(raw_csv, workdir, caplog):
    """A record an older dbnd_prefect wrote (Prefect's record, no digest) is not reused, and is no error."""
    data_root = str(workdir / "data")
    root = Root(data_root)
    assert chain("raw.csv") == RIGHT
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    uri = record_uri(data_root, entry["signature"])
    data = root.read(uri)
    root.write(uri, data[data.index(b'"record":') + len(b'"record":'):-1])
    before = dict(calls)
    with caplog.at_level(logging.INFO, logger="dbnd_prefect"):
        assert chain("raw.csv") == RIGHT
    assert calls["scale"] == before["scale"] + 1 and calls["summarize"] == before["summarize"]
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("dbnd_prefect") and r.levelno >= logging.WARNING]
    assert warnings == []
    assert any("no digest" in r.getMessage() and "'scale'" in r.getMessage() for r in caplog.records)
    assert json.loads(root.read(uri))["dbnd_record"] == 1  # rewritten sealed
    assert not inspect_root(data_root).problems
    after = dict(calls)
    assert chain("raw.csv") == RIGHT and calls == after
