"""Atomic, checksummed writes and layered (compressed, text) file objects.

A write goes to a temporary file first and only then becomes visible at its URI: next to the
target plus `os.replace` on local disk, a local staging file plus one upload for object stores
(fsspec's streaming writers upload what was written so far when closed after an error).
The xxh3_128 checksum and byte count of what is stored are computed while writing.
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import fsspec

# staged uploads up to this size go up as one in-memory PUT (pipe_file), larger ones via put_file
_PIPE_LIMIT = 64 * 2**20
CHUNK = 2**20


def new_hasher() -> Any:
    """A fresh xxh3_128 hasher."""
    import xxhash

    return xxhash.xxh3_128()


def hash_stream(fileobj: IO[bytes]) -> str:
    """xxh3_128 hex digest of everything left in a binary file object, read in chunks."""
    hasher = new_hasher()
    while chunk := fileobj.read(CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest()


class HashingWriter(io.BufferedIOBase):
    """A write-only binary stream that hashes and counts bytes before passing them on.

    Closing it leaves the wrapped file open: the writer that owns that file closes it.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        self._hasher = new_hasher()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._inner.write(view)
        self._hasher.update(view)
        self.count += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        if not self.closed:
            self._inner.flush()

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


@dataclass
class WriteResult:
    """What was stored: the file object to write to, then (after the write) bytes and checksum."""

    file: IO
    bytes: int = 0
    checksum: str = ""


@contextmanager
def atomic_write(
    fs: fsspec.AbstractFileSystem,
    path: str,
    *,
    local: bool,
    compression: str | None = None,
    text: bool = False,
) -> Iterator[WriteResult]:
    """Yield a writable file; on a clean exit its content appears at `path` at once, else not at all."""
    if local:
        parent = os.path.dirname(path)
        staging = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
        raw: IO[bytes] = os.fdopen(_create_exclusive(staging, parent), "wb")
    else:
        fd, staging = tempfile.mkstemp(prefix="dbnd-upload-", suffix=".tmp")
        raw = os.fdopen(fd, "wb")
    stream: IO | None = None
    moved = False
    try:
        hashing = HashingWriter(raw)
        stream = layered_writer(hashing, compression, text)
        result = WriteResult(stream)
        try:
            yield result
        except BaseException:
            _close_quietly(stream)  # so no half-closed layer flushes into a closed file later
            raise
        stream.close()  # finishes compression trailers and text buffers
        result.bytes, result.checksum = hashing.count, hashing.hexdigest()
        raw.flush()
        if local:
            # No fsync: the rename is atomic for readers, and a file lost in a crash fails the
            # size/checksum verification its manifest allows, so it is recomputed, never reused.
            raw.close()
            os.replace(staging, path)
            moved = True
        else:
            raw.close()
            _upload(fs, staging, path, result.bytes)
    finally:
        if not raw.closed:
            raw.close()
        if not moved and os.path.exists(staging):
            os.unlink(staging)


def _create_exclusive(staging: str, parent: str) -> int:
    """Open a new file for writing, creating its folder only when missing (one system call when it exists)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(staging, flags, 0o666)  # os.open honours the umask; NamedTemporaryFile would not
    except FileNotFoundError:
        os.makedirs(parent, exist_ok=True)
        return os.open(staging, flags, 0o666)


def layered_writer(raw: IO[bytes], compression: str | None, text: bool) -> IO:
    """Wrap a binary stream in a compressor and a utf-8 text layer as asked."""
    stream: IO = raw
    if compression:
        from fsspec.compression import compr

        stream = compr[compression](stream, mode="wb")
    if text:
        stream = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    return stream


def open_read(
    fs: fsspec.AbstractFileSystem, path: str, *, compression: str | None = None, text: bool = False
) -> IO:
    """Open a file for reading, decompressed and decoded as utf-8 text if asked; closing closes all layers."""
    from fsspec.core import OpenFile

    mode = "rt" if text else "rb"
    extra = {"encoding": "utf-8", "newline": ""} if text else {}
    return OpenFile(fs, path, mode=mode, compression=compression, **extra).open()


# object stores have no directories; their makedirs on a bucket-level parent would try to create the bucket
_FLAT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory", "http", "https"})


def _upload(fs: fsspec.AbstractFileSystem, staging: str, path: str, size: int) -> None:
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    parent = fs._parent(path)
    if parent and not protocols & _FLAT_STORES:
        try:
            fs.makedirs(parent, exist_ok=True)
        except NotImplementedError:
            pass
    if size <= _PIPE_LIMIT:
        with open(staging, "rb") as f:
            fs.pipe_file(path, f.read())
    else:
        fs.put_file(staging, path)


def _close_quietly(stream: IO) -> None:
    try:
        stream.close()
    except Exception:
        pass
