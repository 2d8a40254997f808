"""A data location with a format: load, atomic save, metadata, checksums and a local copy."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dbnd_prefect.errors import DbndError, FormatError, TargetError
from dbnd_prefect.layout import cache_dir
from dbnd_prefect.redaction import one_line
from dbnd_prefect.targets.atomic import atomic_write, new_hasher, open_read
from dbnd_prefect.targets.target_metadata import StoredMetadata
from dbnd_prefect.targets.filesystem import filesystem_for_uri, redact_uri, split_uri
from dbnd_prefect.targets.folder import (
    check_folder_input,
    folder_checksum,
    folder_info,
    listing,
    load_folder,
    may_be_folder,
    save_folder,
)
from dbnd_prefect.targets.formats import (
    Format,
    as_type_key,
    compression_for_uri,
    default_format_for,
    describe,
    engine_io,
    format_for_uri,
    get_format,
    resolve_format,
    type_key,
)

if TYPE_CHECKING:
    import fsspec

class Target(StoredMetadata):
    """A file at a URI (local path or any fsspec protocol), read and written in a `Format`.

    The format comes from the URI's extension (after an optional compression suffix such as
    `.gz`) unless `format` names one. `load_options`/`save_options` are passed to the format's
    reader/writer on every call, under the per-call options.
    """

    def __init__(
        self,
        uri: str | os.PathLike | Target,
        format: str | None = None,
        load_options: dict[str, Any] | None = None,
        save_options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(uri, Target):  # a remote Target refuses os.fspath; take its URI and options
            format = uri._forced if format is None else format
            load_options = uri.load_options if load_options is None else load_options
            save_options = uri.save_options if save_options is None else save_options
            uri = uri.uri
        raw = os.fspath(uri)
        if not raw:
            raise TargetError("a target needs a path or URI, got an empty string")
        self._protocol, self._path = split_uri(raw)
        # a trailing slash names a folder (of part files, or one file per key of a dict)
        self._folder_hint = raw.endswith(("/", os.sep)) and self._path.rstrip("/") != ""
        self._path = self._path.rstrip("/") if self._folder_hint else self._path
        self._uri = self._path if self._protocol == "file" else raw.rstrip("/")
        if self._folder_hint:
            self._uri += "/"
        self._forced = format
        if format is not None:
            resolve_format(format)  # an unknown name fails now, not at the first write
        self.load_options = dict(load_options or {})
        self.save_options = dict(save_options or {})

    # --- identity ---------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The normalized URI (absolute path for local files)."""
        return self._uri

    @property
    def protocol(self) -> str:
        """fsspec protocol: "file", "s3", "gs", "memory", ..."""
        return self._protocol

    @property
    def path(self) -> str:
        """The path as the file system expects it."""
        return self._path

    @property
    def is_local(self) -> bool:
        """Whether the file is on the local file system."""
        return self._protocol == "file"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        """The (cached) file system that holds this target."""
        return filesystem_for_uri(self._uri)[0]

    @property
    def format(self) -> Format:
        """The file format (raises FormatError when the extension is unknown and none was forced)."""
        return format_for_uri(self._uri, self._forced)[0]

    @property
    def compression(self) -> str | None:
        """fsspec compression name from the URI's suffix ("gzip", "bz2", ...), or None."""
        return format_for_uri(self._uri, self._forced)[1]

    def __str__(self) -> str:
        return self._uri

    def __repr__(self) -> str:
        return self._uri

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and other._uri == self._uri and other._forced == self._forced

    def __hash__(self) -> int:
        return hash(self._uri)

    def is_folder(self) -> bool:
        """Whether the URI names a folder: it ends with "/" or is a local directory."""
        return self._folder_hint or (self.is_local and os.path.isdir(self._path))

    def __fspath__(self) -> str:
        if not self.is_local:
            raise TypeError(f"'{self.shown}' is not a local file; use .local_path() for a local copy")
        return self._path

    @property
    def shown(self) -> str:
        """The URI as it may appear in messages (no credentials)."""
        return redact_uri(self._uri)

    # --- reading ----------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether something exists at the URI."""
        if self.is_local:
            return os.path.exists(self._path)
        try:
            if self._folder_hint:

                return bool(listing(self))
            return bool(self.fs.exists(self._path))
        except DbndError:
            raise
        except Exception as exc:
            raise self._error("cannot check whether", "exists", exc) from None

    def open(self, mode: str = "rb") -> IO:
        """Open for reading ("rb" or "r" for utf-8 text), decompressed by the URI's suffix."""
        if mode not in ("rb", "r", "rt"):
            raise TargetError(
                f"cannot open '{self.shown}' with mode '{mode}': targets open only for reading",
                hint="write with .save(obj) or `with target.writer() as f:` (atomic)",
            )
        compression = compression_for_uri(self._uri)
        try:
            return open_read(self.fs, self._path, compression=compression, text=mode != "rb")
        except FileNotFoundError as exc:
            raise self._missing(exc) from None
        except DbndError:
            raise
        except Exception as exc:
            raise self._error("cannot open", "", exc) from None

    def load(self, type_key_or_type: Any = None, **options: Any) -> Any:
        """Read the file as the given type (a type, annotation or type key; default: the format's own).

        A folder loads as one DataFrame of its part files, or as {name: DataFrame} for a dict.
        """
        wanted = None if type_key_or_type is None else as_type_key(type_key_or_type)
        engine = engine_io(wanted)
        if engine is not None:  # read by its engine from the URI (a Spark DataFrame)
            return engine.load(self, {**self.load_options, **options})
        if self.is_folder():
            return self._load_folder(wanted, options)
        fmt, compression = format_for_uri(self._uri, self._forced)
        if not fmt.can_load(wanted):
            raise FormatError(
                f"format '{fmt.name}' of '{self.shown}' cannot be loaded as {wanted}",
                hint=f"{fmt.name} loads {', '.join(fmt.load_types)}; "
                f"use a {default_format_for(wanted or '')} file or force a format with format='NAME'",
            )
        fs = self.fs
        try:
            with open_read(fs, self._path, compression=compression, text=not fmt.binary) as f:
                return fmt.load(f, wanted, **{**self.load_options, **options})
        except (FileNotFoundError, IsADirectoryError) as exc:
            if not self.is_local and self._remote_folder():
                return self._load_folder(wanted, options)
            raise self._missing(exc) from None
        except DbndError as exc:
            raise exc.add_context(f"cannot read '{self.shown}' as {fmt.name}") from None
        except Exception as exc:
            store_failure = self._store_failure("cannot read", exc)
            if store_failure is not None:
                raise store_failure from None
            raise TargetError(
                f"cannot read '{self.shown}' as {fmt.name}: {type(exc).__name__}: {one_line(exc, 500)}",
                hint="check the file's content, the load options, or force another format with format='NAME'",
            ) from None

    def _remote_folder(self) -> bool:
        try:
            return bool(self.fs.isdir(self._path))
        except Exception:
            return False

    def _load_folder(self, wanted: str | None, options: dict[str, Any]) -> Any:

        try:
            return load_folder(self, wanted, {**self.load_options, **options})
        except DbndError:
            raise
        except Exception as exc:
            raise TargetError(
                f"cannot read folder '{self.shown}': {type(exc).__name__}: {one_line(exc, 500)}",
                hint="check the part files and the load options",
            ) from None

    def local_path(self) -> Path:
        """The file itself when local; else a copy downloaded once into the cache directory."""
        if self.is_local:
            return Path(self._path)
        fingerprint = self.fingerprint()
        hasher = new_hasher()
        hasher.update(f"{self._uri}\0{fingerprint}".encode())
        dest = cache_dir() / "downloads" / hasher.hexdigest() / (os.path.basename(self._path) or "data")
        if dest.exists():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            self.fs.get_file(self._path, str(staging))
            os.replace(staging, dest)
        except FileNotFoundError as exc:
            raise self._missing(exc) from None
        except Exception as exc:
            raise self._error("cannot download", "to the local cache", exc) from None
        finally:
            if staging.exists():
                staging.unlink()
        return dest

    # --- writing ----------------------------------------------------------------------------

    @contextmanager
    def writer(self, mode: str = "wb") -> Iterator[IO]:
        """Yield a file to write ("wb", or "w" for utf-8 text); it appears at the URI only on success."""
        if mode not in ("wb", "w", "wt"):
            raise TargetError(f"cannot write '{self.shown}' with mode '{mode}'", hint="use 'wb' or 'w'")
        compression = compression_for_uri(self._uri)
        with atomic_write(
            self.fs, self._path, local=self.is_local, compression=compression, text=mode != "wb"
        ) as result:
            yield result.file

    def save(self, obj: Any, **options: Any) -> dict[str, Any]:
        """Write `obj` atomically; return uri, format, compression, bytes, checksum (+ rows, schema).

        To a folder URI ("out/"), a dict of DataFrames is written as one file per key plus `_SUCCESS`.
        """
        key = type_key(type(obj))
        engine = engine_io(key)
        if engine is not None:  # written by its engine, as a folder at the URI (a Spark DataFrame)
            return engine.save(obj, self, {**self.save_options, **options})
        if self._folder_hint:
            return self._save_folder(obj, options)
        fmt, compression = format_for_uri(self._uri, self._forced)
        if not fmt.can_save(key):
            suggested = default_format_for(key)
            raise FormatError(
                f"format '{fmt.name}' cannot save {key} to '{self.shown}'",
                hint=f"{fmt.name} saves {', '.join(fmt.save_types)}; save {key} as {suggested} "
                f"(a path ending {get_format(suggested).extensions[0]}) or force format='{suggested}'",
            )
        fs = self.fs
        try:
            with atomic_write(
                fs, self._path, local=self.is_local, compression=compression, text=not fmt.binary
            ) as result:
                fmt.save(obj, result.file, **{**self.save_options, **options})
        except DbndError as exc:
            raise exc.add_context(f"cannot write '{self.shown}' as {fmt.name}") from None
        except Exception as exc:
            store_failure = self._store_failure("cannot write", exc)
            if store_failure is not None:
                raise store_failure from None
            raise TargetError(
                f"cannot write '{self.shown}' as {fmt.name}: {type(exc).__name__}: {one_line(exc, 500)}",
                hint="nothing was written; check the object and the save options",
            ) from None
        return {
            "uri": self._uri,
            "format": fmt.name,
            "compression": compression,
            "bytes": result.bytes,
            "checksum": result.checksum,
            **describe(obj),
        }

    def _save_folder(self, obj: Any, options: dict[str, Any]) -> dict[str, Any]:
        from dbnd_prefect.targets.formats import compression_suffixes

        fmt, compression = resolve_format(self._forced) if self._forced else (get_format_for_frames(), None)
        suffix = next((ext for ext, name in compression_suffixes().items() if name == compression), "")
        try:
            save_folder(self, obj, fmt, suffix, {**self.save_options, **options})
        except DbndError as exc:
            raise exc.add_context(f"cannot write folder '{self.shown}'") from None
        info = folder_info(self)
        return {"uri": self._uri, "format": fmt.name, "compression": compression, "bytes": info["size"],
                "checksum": folder_checksum(self), "files": info["files"]}


def get_format_for_frames() -> Format:
    """The format of the files a folder output is written in when none is forced."""
    return get_format(default_format_for("pandas.DataFrame"))


def check_folder_uri(uri: str, type_key_: str, data: Any = None) -> bool:
    """Whether a data input is read as a folder; for a local one, raise the error loading it would (no part read).

    `data` is the parameter's `Data` marker (its format and `success_marker` load option), if any.
    """
    if not may_be_folder(uri, type_key_):
        return False
    return check_folder_input(Target(uri if uri.endswith("/") else f"{uri}/", format=getattr(data, "format", None)), type_key_, data)
