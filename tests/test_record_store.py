"""The block Prefect keeps dbnd cache records in, against the test session's Prefect server.

A record is sealed by the xxh3_128 digest of Prefect's record and checked whole when Prefect reads it: an edit
of any byte, a record moved to another key or one naming a serializer dbnd does not write with is refused
before anything in it is unpickled, so Prefect finds no cache entry and runs the task again."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import xxhash
from prefect.blocks.core import Block
from prefect.results import ResultStore

from dbnd_prefect import pipeline, task
from dbnd_prefect.context import last_run
from dbnd_prefect.outputs import TaskOutputs
from dbnd_prefect.record_store import CorruptRecord, RecordSerializer, RecordStore, UnsealedRecord


@task
def double(x: int) -> int:
    return 2 * x


@pipeline
def doubled(x: int):
    return double(x)


class Hostile:
    """Unpickling it touches `marker`: the marker's absence proves nothing was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def sealed(record: bytes) -> bytes:
    """What a writer who knows the documented format (and not the library) stores: digest, then the record."""
    return b'{"dbnd_record":1,"xxh3_128":"' + xxhash.xxh3_128_hexdigest(record).encode() + b'","record":' + record + b"}"


def inner(data: bytes) -> dict:
    return json.loads(data)["record"]


def stored_record(workdir: Path) -> tuple[RecordStore, str, Path]:
    """A real run's record: (its saved block, its key, its file)."""
    assert doubled(4) == 8
    block = last_run().storage.result_storage
    [path] = (workdir / "data" / ".dbnd" / "prefect-records").iterdir()
    return block, f"prefect-records/{path.name}", path


def prefect_store(block: RecordStore) -> ResultStore:
    """The result store a versioned dbnd task reads its cache records with (engine/prefect_tasks.py)."""
    return ResultStore(result_storage=block, serializer=RecordSerializer(), cache_result_in_memory=False)


def with_result(record: dict, obj: Any, serializer: dict | None = None) -> bytes:
    """`record` holding `obj` encoded as the serializer the record names encodes it (dbnd's digest-checked pickle,
    or Prefect's pickle serializer: base64 with newlines)."""
    forged = json.loads(json.dumps(record))
    if serializer is not None:
        forged["metadata"]["serializer"] = serializer
    if forged["metadata"]["serializer"].get("type") == "dbnd-pickle":
        forged["result"] = RecordSerializer().dumps(obj).decode()
    else:
        forged["result"] = base64.encodebytes(pickle.dumps(obj)).decode()
    return json.dumps(forged, separators=(",", ":")).encode()


def test_a_data_root_gets_a_saved_record_store_holding_sealed_records(workdir: Path) -> None:
    block, key, path = stored_record(workdir)
    assert isinstance(block, RecordStore)
    assert block.basepath == str(workdir / "data" / ".dbnd")
    # saved on the server, so another process (a worker, the UI's block list) finds it by name
    loaded = Block.load(f"dbnd-record-store/{block._block_document_name}")
    assert isinstance(loaded, RecordStore) and loaded.basepath == block.basepath
    on_disk = json.loads(path.read_bytes())  # one JSON object: the digest of Prefect's record, then the record
    assert list(on_disk) == ["dbnd_record", "xxh3_128", "record"] and on_disk["dbnd_record"] == 1
    record = loaded.read_path(key)
    assert on_disk["xxh3_128"] == xxhash.xxh3_128_hexdigest(record) and json.loads(record) == on_disk["record"]
    assert on_disk["record"]["metadata"]["storage_key"] == key
    outputs = prefect_store(loaded).read(key).result
    assert isinstance(outputs, TaskOutputs) and outputs.task_name == "double" and outputs.value() == 8


def test_every_flipped_byte_of_a_record_is_refused_before_anything_is_unpickled(workdir: Path, tmp_path: Path) -> None:
    block, key, path = stored_record(workdir)
    marker = tmp_path / "unpickled"
    hostile = sealed(with_result(inner(path.read_bytes()), Hostile(marker)))
    store = prefect_store(block)
    for offset in range(len(hostile)):
        for xor in (0x01, 0x55, 0x80):
            flipped = bytearray(hostile)
            flipped[offset] ^= xor
            path.write_bytes(bytes(flipped))
            assert not store.exists(key), f"byte {offset} ^ {xor:#x}: Prefect sees a cache entry"
            with pytest.raises(CorruptRecord):
                store.read(key)
            assert not marker.exists(), f"byte {offset} ^ {xor:#x}: the record was unpickled unverified"
    # the record as written does verify: its payload (here one that touches the marker) is what Prefect decodes
    path.write_bytes(hostile)
    assert store.exists(key) and marker.exists()


@pytest.mark.parametrize("serializer", [
    {"type": "pickle", "picklelib": "cloudpickle", "picklelib_version": None},
    {"type": "pickle", "picklelib": "pickle", "picklelib_version": "4.0"},
    {"type": "compressed/pickle", "serializer": {"type": "pickle"}, "compressionlib": "lzma"},
    {"type": "json"},
    {"type": "no-such-serializer"},
])
def test_a_record_naming_another_serializer_is_refused_even_with_a_valid_digest(workdir, tmp_path, serializer):
    block, key, path = stored_record(workdir)
    marker = tmp_path / "unpickled"
    path.write_bytes(sealed(with_result(inner(path.read_bytes()), Hostile(marker), serializer)))
    with pytest.raises(CorruptRecord, match=f"names the serializer '{serializer['type']}'"):
        block.read_path(key)
    assert not prefect_store(block).exists(key)
    assert not marker.exists()


def test_a_record_moved_to_another_key_is_refused(workdir: Path) -> None:
    block, key, path = stored_record(workdir)
    other = path.with_name("0" * len(path.name))
    other.write_bytes(path.read_bytes())
    with pytest.raises(CorruptRecord, match="written for the key"):
        block.read_path(f"prefect-records/{other.name}")
    assert block.read_path(key)


def test_a_record_written_before_records_were_sealed_is_not_reused_and_is_no_error(workdir: Path) -> None:
    block, key, path = stored_record(workdir)
    path.write_bytes(block.read_path(key))  # Prefect's record as an older dbnd_prefect stored it
    with pytest.raises(UnsealedRecord, match="without a digest"):
        block.read_path(key)
    assert not prefect_store(block).exists(key)
    assert doubled(4) == 8 and last_run().task_runs[0]["state"] == "Completed"  # recomputed, then sealed
    assert json.loads(path.read_bytes())["dbnd_record"] == 1
    assert doubled(4) == 8 and last_run().task_runs[0]["state"] == "Cached"


def test_the_digest_serializer_refuses_any_edited_payload_on_prefects_own_read_path(tmp_path: Path) -> None:
    """RecordSerializer (`dbnd-pickle`) checks the pickle's digest whatever storage holds the record."""
    from prefect.results import ResultRecord, ResultRecordMetadata

    marker = tmp_path / "unpickled"
    record = ResultRecord(metadata=ResultRecordMetadata(storage_key="k", serializer=RecordSerializer()),
                          result=Hostile(marker)).serialize()
    assert json.loads(record)["metadata"]["serializer"] == {"type": "dbnd-pickle"}
    start = record.index(b'"result":"') + len(b'"result":"')
    for offset in range(start, len(record) - 2):  # every byte of the digest and the base64 pickle
        for xor in (0x01, 0x55):
            flipped = bytearray(record)
            flipped[offset] ^= xor
            with pytest.raises(Exception):
                ResultRecord.deserialize(bytes(flipped))
            assert not marker.exists(), f"byte {offset} ^ {xor:#x} was unpickled unverified"
    ResultRecord.deserialize(record)
    assert marker.exists()


def test_writes_are_atomic_and_leave_no_staging_files(tmp_path: Path) -> None:
    store = RecordStore(basepath=str(tmp_path))
    for n in (1, 2):
        record = with_result({"metadata": {"storage_key": "prefect-records/abc", "serializer": {
            "type": "pickle", "picklelib": "pickle", "picklelib_version": None}}, "result": ""}, n)
        store.write_path("prefect-records/abc", record)
    assert pickle.loads(base64.decodebytes(json.loads(store.read_path("prefect-records/abc"))["result"].encode())) == 2
    assert [p.name for p in (tmp_path / "prefect-records").iterdir()] == ["abc"]


def test_a_missing_record_raises_so_prefect_sees_no_cache_entry(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        RecordStore(basepath=str(tmp_path)).read_path("prefect-records/nothing-here")


@pytest.mark.parametrize("key", ["/etc/passwd", "../outside", "prefect-records/../../x", "s3://b/k"])
def test_keys_cannot_leave_the_records_folder(tmp_path: Path, key: str) -> None:
    store = RecordStore(basepath=str(tmp_path / "root"))
    with pytest.raises(ValueError, match="not a relative path"):
        store.write_path(key, b"x")
    assert not (tmp_path / "outside").exists()


def test_memory_root_records_go_through_the_targets_file_system() -> None:
    import fsspec

    record = b'{"metadata":{"storage_key":"prefect-records/k1","serializer":{"type":"dbnd-pickle"}},"result":"x"}'
    store = RecordStore(basepath="memory://dbnd-record-store-test/.dbnd")
    store.write_path("prefect-records/k1", record)
    assert fsspec.filesystem("memory").cat_file("/dbnd-record-store-test/.dbnd/prefect-records/k1") == sealed(record)
    assert store.read_path("prefect-records/k1") == record


def test_another_process_finds_the_block_type_through_prefect_collections(workdir: Path) -> None:
    from tests.conftest import run_python

    assert doubled(5) == 10
    name = last_run().storage.result_storage._block_document_name
    code = ("from prefect.blocks.core import Block; "
            f"b = Block.load('dbnd-record-store/{name}'); print(type(b).__name__, b.basepath)")
    result = run_python("-c", code, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["RecordStore", str(workdir / "data" / ".dbnd")]
