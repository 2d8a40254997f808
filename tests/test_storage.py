"""The data root a run keeps its outputs and cache records in: a Prefect storage block or a remote URI."""

from __future__ import annotations

import pytest

from dbnd_prefect.config import config_context
from dbnd_prefect.context import last_run
from tests.counted_chain import calls, chain


def test_local_file_system_block_as_data_root(raw_csv, workdir):
    from prefect.filesystems import LocalFileSystem

    root = workdir / "block-root"
    LocalFileSystem(basepath=str(root)).save("dbnd-test-root", overwrite=True)
    with config_context({"run.storage_block": "local-file-system/dbnd-test-root"}):
        first = chain("raw.csv")
        assert last_run().data_root == str(root)
        second = chain("raw.csv")
    assert first == second and calls["load_rows"] == 1
    entry = next(e for e in last_run().task_runs if e["task"] == "scale")
    assert entry["state"] == "Cached" and entry["outputs"]["result"].startswith(str(root / "local"))
    assert list((root / ".dbnd" / "prefect-records").iterdir()), "cache records are not kept with the data"


def test_a_local_block_and_the_same_folder_as_data_root_share_their_stored_work(raw_csv, workdir):
    """Moving a project from `data_root = "X"` to a LocalFileSystem block on X (or back) keeps every stored
    version: the records are the same files, so nothing is computed again either way."""
    from prefect.filesystems import LocalFileSystem

    root = workdir / "shared-root"
    LocalFileSystem(basepath=str(root)).save("dbnd-shared-root", overwrite=True)
    with config_context({"run.data_root": str(root)}):
        first = chain("raw.csv")
    with config_context({"run.storage_block": "local-file-system/dbnd-shared-root"}):
        second = chain("raw.csv")
    assert second == first and calls == {"load_rows": 1, "scale": 1, "summarize": 2}
    assert {e["state"] for e in last_run().task_runs} == {"Cached"}
    records = list((root / ".dbnd" / "prefect-records").iterdir())
    assert len(records) == 4 and not [p for p in records if p.name.endswith(".tmp")]


def test_unknown_storage_block_is_a_clear_error(raw_csv):
    from dbnd_prefect.errors import ConfigError

    with config_context({"run.storage_block": "local-file-system/no-such-block"}):
        with pytest.raises(ConfigError, match="storage block 'local-file-system/no-such-block' could not be loaded"):
            chain("raw.csv")


def test_remote_uri_data_root_keeps_records_there(raw_csv):
    import fsspec

    with config_context({"run.data_root": "memory://dbnd-bucket/root"}):
        chain("raw.csv")
        chain("raw.csv")
    assert calls["scale"] == 1
    fs = fsspec.filesystem("memory")
    assert fs.glob("/dbnd-bucket/root/.dbnd/prefect-records/*")
    assert fs.glob("/dbnd-bucket/root/local/*/scale/scale_*/result.parquet")
