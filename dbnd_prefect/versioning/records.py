"""Where a run keeps its cache records: the Prefect result storage beside its data root.

Cache records always live in `.dbnd/` under the data root, so reuse follows the data, never the user's
Prefect home. Prefect accepts only saved blocks (or local paths) as result storage, so a data root (and a
storage block on local disk) gets a RecordStore block saved once per process, holding no credentials (the
records are reached through the targets' file systems and their options). A remote storage block keeps the
records itself, under `.dbnd/`, through a RecordStore naming it: sealed like every other record, and reached with
the block's own credentials wherever the block loads. Choosing the storage of a run is runtime/storage.py.
"""

from __future__ import annotations

from typing import Any

import dataclasses

import xxhash

from dbnd_prefect import layout, prefect_internals


class RunStorage:
    """A data root and how Prefect reaches its records folder.

    The Prefect block of a plain root is saved (which needs the Prefect API) only when a task run
    first asks for it, so `dbnd plan` and the other read-only commands start no server.
    """

    def __init__(self, data_root: str, record_prefix: str, block: Any = None, in_block: str | None = None) -> None:
        self.data_root = data_root
        self.record_prefix = record_prefix
        self._block = block
        self.in_block = in_block  # the saved storage block (BLOCK-TYPE/NAME) the data root is, if it is one
        self._reader: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}

    @property
    def result_storage(self) -> Any:
        """The saved block Prefect keeps this root's cache records in."""
        if self._block is None:
            self._block = _records_block(self.data_root, self.in_block)
        return self._block

    def record_reader(self) -> Any:
        """What reads this root's cache records (no Prefect API needed), verifying each one whole before it is
        decoded: a `PlainRecordReader` for a root of plain paths or URIs (no Prefect import, for `dbnd plan`),
        else a Prefect ResultStore through the RecordStore in the storage block (record_store.py)."""
        if self._reader is None and self._block is None and self.in_block is None:
            self._reader = PlainRecordReader(layout.store_dir(self.data_root))
        if self._reader is None:
            from prefect.results import ResultStore

            from dbnd_prefect.record_store import RecordSerializer, RecordStore

            block = self._block or (RecordStore(basepath=layout.STORE_DIR, block=self.in_block) if self.in_block
                                    else RecordStore(basepath=layout.store_dir(self.data_root)))
            # the serializer is Prefect's fallback for bytes that are not a record: it unpickles nothing
            # that does not match its digest
            self._reader = ResultStore(result_storage=block, serializer=RecordSerializer(),
                                       cache_result_in_memory=False)
        return self._reader

    def record_key(self, digest: str) -> str:
        """The Prefect cache key (a path inside `result_storage`) of a signature's record."""
        return self.record_prefix + digest

    def record_uri(self, digest: str) -> str:
        return layout.record_uri(self.data_root, digest)

    def run_record_uri(self, flow_run_id: str) -> str:
        """Where the record of the pipeline run `flow_run_id` goes (see history/run_record.py)."""
        return layout.run_record_uri(self.data_root, flow_run_id)


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    """A cache record as read without Prefect: the value Prefect stored (a `TaskOutputs`)."""

    result: Any


@dataclasses.dataclass(frozen=True)
class PlainRecordReader:
    """Reads the sealed records under `folder` (a path or URI) as the RecordStore block would, without Prefect."""

    folder: str

    def read(self, key: str) -> StoredRecord:
        """The record stored under `key`: FileNotFoundError when there is none, CorruptRecord or UnsealedRecord
        when it does not verify."""
        from dbnd_prefect.record_envelope import decode, unseal
        from dbnd_prefect.targets.filesystem import filesystem_for_uri, split_uri

        if key.startswith("/") or "://" in key or ".." in key.split("/"):
            raise ValueError(f"record key '{key}' is not a relative path inside {self.folder}")
        protocol, base = split_uri(self.folder)
        if protocol == "file":
            with open(f"{base.rstrip('/')}/{key}", "rb") as f:
                data = f.read()
        else:
            fs, inner = filesystem_for_uri(f"{self.folder.rstrip('/')}/{key}")
            data = fs.cat_file(inner)
        return StoredRecord(decode(unseal(data, key)))


_saved_blocks: dict[str, Any] = {}


def _records_block(root: str, in_block: str | None = None) -> Any:
    """The saved RecordStore block of a root's records folder, made once per process and root (`in_block`: the
    storage block the root is, whose own credentials reach the records).

    Saved rather than passed as a path: Prefect re-resolves an unsaved location on every record it
    reads or writes, but trusts a saved block's keys as they are.
    """
    from dbnd_prefect.record_store import RecordStore

    basepath = layout.STORE_DIR if in_block else layout.store_dir(root)
    identity = f"{in_block}:{basepath}" if in_block else basepath
    block = _saved_blocks.get(identity)
    if block is None:
        name = f"dbnd-root-{xxhash.xxh3_64_hexdigest(identity.encode())}"
        # sync: with an event loop running in this thread (Jupyter, asyncio), Prefect would return a coroutine
        try:  # saved by an earlier run: one read, where saving again costs three times as long
            block = prefect_internals.sync(RecordStore.load, name)
        except (ValueError, KeyError):
            block = None
        if block is None or block.basepath != basepath or block.block != in_block:
            block = RecordStore(basepath=basepath, block=in_block)
            prefect_internals.sync(block.save, name, overwrite=True)
        _saved_blocks[identity] = block
    return block
