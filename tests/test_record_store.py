"""The block Prefect keeps dbnd cache records in, against the test session's Prefect server."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.blocks.core import Block

from dbnd_prefect import pipeline, task
from dbnd_prefect.record_store import RecordStore
from dbnd_prefect.context import last_run


@task
def double(x: int) -> int:
    return 2 * x


@pipeline
def doubled(x: int):
    return double(x)


def test_a_data_root_gets_a_saved_record_store_holding_the_records(workdir: Path) -> None:
    assert doubled(4) == 8
    storage = last_run().storage
    block = storage.result_storage
    assert isinstance(block, RecordStore)
    assert block.basepath == str(workdir / "data" / ".dbnd")
    # saved on the server, so another process (a worker, the UI's block list) finds it by name
    loaded = Block.load(f"dbnd-record-store/{block._block_document_name}")
    assert isinstance(loaded, RecordStore) and loaded.basepath == block.basepath
    records = list((workdir / "data" / ".dbnd" / "prefect-records").iterdir())
    assert len(records) == 1
    assert loaded.read_path(f"prefect-records/{records[0].name}") == records[0].read_bytes()


def test_writes_are_atomic_and_leave_no_staging_files(tmp_path: Path) -> None:
    store = RecordStore(basepath=str(tmp_path))
    store.write_path("prefect-records/abc", b"first")
    store.write_path("prefect-records/abc", b"second")
    assert store.read_path("prefect-records/abc") == b"second"
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

    store = RecordStore(basepath="memory://dbnd-record-store-test/.dbnd")
    store.write_path("prefect-records/k1", b"payload")
    assert fsspec.filesystem("memory").cat_file("/dbnd-record-store-test/.dbnd/prefect-records/k1") == b"payload"
    assert store.read_path("prefect-records/k1") == b"payload"


def test_another_process_finds_the_block_type_through_prefect_collections(workdir: Path) -> None:
    from tests.conftest import run_python

    assert doubled(5) == 10
    name = last_run().storage.result_storage._block_document_name
    code = ("from prefect.blocks.core import Block; "
            f"b = Block.load('dbnd-record-store/{name}'); print(type(b).__name__, b.basepath)")
    result = run_python("-c", code, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["RecordStore", str(workdir / "data" / ".dbnd")]
