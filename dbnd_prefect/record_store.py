"""The Prefect storage block that holds a data root's cache records (`{root}/.dbnd`), each sealed by a digest.

Prefect writes and reads task cache records through a result-storage block. This one reaches the
records folder through dbnd's own file systems (so a remote root uses the endpoint and credentials
the targets use, none of them saved in the block), writes each record atomically, and trusts its
base path where Prefect's LocalFileSystem resolves the full path's symlinks on every call (measured on
small records: 0.047 vs 0.063 ms per write, 0.010 vs 0.045 ms per read).

A record is checked whole before anything in it is decoded (the envelope: record_envelope.py).
`read_path`, which Prefect's own cache lookup calls, returns Prefect's record only when the head, the
digest, the key it was written under and the serializer it names (one of `SERIALIZERS`) all hold: an
edit of any byte raises `CorruptRecord` before Prefect unpickles anything, so Prefect treats the record
as absent and runs the task again. A record without the envelope (written before records were sealed)
raises `UnsealedRecord`: not reusable, recomputed, and not an error.
"""

from __future__ import annotations

import base64
import os
import pickle
from typing import Any, Optional

import xxhash
from prefect.filesystems import WritableFileSystem
from prefect.serializers import Serializer
from pydantic import Field

from dbnd_prefect.record_envelope import (SERIALIZERS, CorruptRecord, UnsealedRecord, loads_sealed_pickle, seal,
                                          unseal)


class RecordSerializer(Serializer):
    """Pickle with the xxh3_128 digest of the pickle in front (`<32 hex>:<base64>`); `loads` checks the
    digest before unpickling. Registered with Prefect by its type name, `dbnd-pickle`, so a record
    naming it is decoded by it, on whatever storage the record lives."""

    type: str = Field(default="dbnd-pickle", frozen=True)

    def dumps(self, obj: Any) -> bytes:
        blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return xxhash.xxh3_128_hexdigest(blob).encode() + b":" + base64.b64encode(blob)

    def loads(self, blob: bytes) -> Any:
        return loads_sealed_pickle(blob)


_inner_blocks: dict[str, Any] = {}  # storage blocks records live in, loaded once per process


class RecordStore(WritableFileSystem):
    """Cache records of dbnd tasks, in a folder (local path or URI) under a data root."""

    _block_type_name = "dbnd Record Store"
    _block_type_slug = "dbnd-record-store"
    _description = "Where dbnd_prefect keeps Prefect cache records: the .dbnd folder of a data root."

    basepath: str = Field(description="The records folder: a local path or a URI (s3://, gs://, az://...); with "
                                      "`block`, the folder inside that block.")
    block: Optional[str] = Field(default=None, description="A saved storage block (BLOCK-TYPE/NAME) whose files hold "
                                                           "the records, reached with its own credentials.")

    def _location(self, path: str) -> tuple[Any, str, bool]:
        """(file system or None for local disk, path inside it, is local) of a key under the base path."""
        from dbnd_prefect.targets.filesystem import filesystem_for_uri, split_uri

        if os.path.isabs(path) or "://" in path or ".." in path.split("/"):
            raise ValueError(f"record key '{path}' is not a relative path inside {self.basepath}")
        protocol, base = split_uri(self.basepath)
        if protocol == "file":
            return None, os.path.join(base, path), True
        fs, inner = filesystem_for_uri(f"{self.basepath.rstrip('/')}/{path}")
        return fs, inner, False

    def _in_block(self, path: str) -> tuple[Any, str]:
        """(the storage block holding the records, the record's path in it) for a record store inside a block."""
        from dbnd_prefect import prefect_internals

        if os.path.isabs(path) or "://" in path or ".." in path.split("/"):
            raise ValueError(f"record key '{path}' is not a relative path inside {self.basepath}")
        found = _inner_blocks.get(self.block)
        if found is None:
            from prefect.blocks.core import Block

            found = _inner_blocks[self.block] = prefect_internals.sync(Block.load, self.block)
        return found, f"{self.basepath.strip('/')}/{path}"

    def read_path(self, path: str, _sync: bool | None = None) -> bytes:
        """Prefect's record stored under `path`, verified whole (FileNotFoundError when there is none,
        CorruptRecord or UnsealedRecord when it does not verify)."""
        if self.block:
            from dbnd_prefect import prefect_internals

            storage, key = self._in_block(path)
            return unseal(prefect_internals.sync(storage.read_path, key), path)
        fs, inner, local = self._location(path)
        if local:
            with open(inner, "rb") as f:
                data = f.read()
        else:
            data = fs.cat_file(inner)
        return unseal(data, path)

    def write_path(self, path: str, content: bytes, _sync: bool | None = None) -> str:
        """Store Prefect's record `content` sealed under `path`, atomically; return where it went."""
        from dbnd_prefect.targets.atomic import atomic_write

        if self.block:  # an object store's put is whole or nothing
            from dbnd_prefect import prefect_internals

            storage, key = self._in_block(path)
            return prefect_internals.sync(storage.write_path, key, seal(content))

        fs, inner, local = self._location(path)
        with atomic_write(fs, inner, local=local) as result:
            result.file.write(seal(content))
        return inner

    async def aread_path(self, path: str) -> bytes:
        return self.read_path(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return self.write_path(path, content)


__all__ = ["RecordSerializer", "RecordStore", "CorruptRecord", "UnsealedRecord", "SERIALIZERS", "seal", "unseal"]
