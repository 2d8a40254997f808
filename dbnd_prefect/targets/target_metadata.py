"""What a target's store says about it without reading it (size, versions), its fingerprint and checksum,
and the errors reading it can end in: the part of `Target` that reads no content as data."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from dbnd_prefect.errors import DbndError, TargetError
from dbnd_prefect.redaction import one_line
from dbnd_prefect.targets.atomic import CHUNK, hash_stream
from dbnd_prefect.targets.filesystem import describe_failure

# fs.info() spells the same facts differently per backend: s3fs, gcsfs, adlfs, http, local
_ETAG_KEYS = ("ETag", "etag", "e_tag")
_VERSION_KEYS = ("VersionId", "version_id", "versionId")
_GENERATION_KEYS = ("generation",)
_MODIFIED_KEYS = ("LastModified", "last_modified", "updated", "mtime")


class StoredMetadata:
    """Metadata, fingerprint and checksum of what is stored at a target (mixed into `Target`)."""

    _uri: str
    _path: str
    _protocol: str
    is_local: bool
    fs: Any
    shown: str

    def is_folder(self) -> bool:  # defined by Target
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Store metadata without reading content: size, mtime (local), ETag / generation / version id.

        For a folder: total size and file count, from one listing.
        """
        if self.is_folder():
            from dbnd_prefect.targets.folder import folder_info

            return folder_info(self)
        if self.is_local:
            try:
                st = os.stat(self._path)
            except FileNotFoundError:
                raise self._missing(None) from None
            return {"uri": self._uri, "size": st.st_size, "mtime": st.st_mtime, "mtime_ns": st.st_mtime_ns}
        try:
            raw = self.fs.info(self._path)
        except FileNotFoundError as exc:
            raise self._missing(exc) from None
        except DbndError:
            raise
        except Exception as exc:
            raise self._error("cannot read metadata of", "", exc) from None
        out: dict[str, Any] = {"uri": self._uri, "size": raw.get("size")}
        for name, keys in (
            ("etag", _ETAG_KEYS),
            ("version_id", _VERSION_KEYS),
            ("generation", _GENERATION_KEYS),
            ("last_modified", _MODIFIED_KEYS),
        ):
            value = next((raw[k] for k in keys if raw.get(k) not in (None, "")), None)
            if value is not None:
                out[name] = _plain(value)
        # one store-neutral name for "this object's version", whatever the store calls it
        version = out.get("version_id", out.get("generation"))
        if version is not None:
            out["version"] = version
        return out

    def fingerprint(self, full: bool = False) -> str:
        """A string that changes when the content changes.

        Cheap by default ("stat:SIZE:MTIME_NS" locally; the store's version id, generation or
        ETag remotely; a content hash where the store offers none); "xxh3_128:HEX" when `full`.
        """
        if full:
            return f"xxh3_128:{self.checksum()}"
        if self.is_folder():
            from dbnd_prefect.targets.folder import folder_fingerprint

            return folder_fingerprint(self)
        info = self.info()
        if self.is_local:
            return f"stat:{info['size']}:{info['mtime_ns']}"
        for name in ("version_id", "generation", "etag"):
            if name in info:
                return f"{name}:{info[name]}"
        if "last_modified" in info:
            return f"modified:{info['size']}:{info['last_modified']}"
        return f"xxh3_128:{self.checksum()}"

    def checksum(self) -> str:
        """xxh3_128 hex digest of the stored bytes (as stored, i.e. still compressed); of every file of a folder."""
        if self.is_folder():
            from dbnd_prefect.targets.folder import folder_checksum

            return folder_checksum(self)
        try:
            with self.fs.open(self._path, "rb", block_size=CHUNK) as f:
                return hash_stream(f)
        except FileNotFoundError as exc:
            raise self._missing(exc) from None
        except DbndError:
            raise
        except Exception as exc:
            raise self._error("cannot read", "to checksum it", exc) from None

    # --- helpers ----------------------------------------------------------------------------

    def _missing(self, exc: BaseException | None) -> TargetError:
        """Not found: the object, or (when the store says so) its whole bucket/container."""
        if exc is not None:
            store_failure = self._store_failure("cannot read", exc)
            if store_failure is not None:
                return store_failure
        return TargetError(
            f"input '{self.shown}' does not exist",
            hint="check the path, or pass another with --set",
        )

    def _store_failure(self, action: str, exc: BaseException, tail: str = "") -> TargetError | None:
        """The error for refused credentials, a missing bucket or an unreachable store; None otherwise."""
        if self.is_local:
            return None
        try:
            fs = self.fs
        except DbndError:
            fs = None
        described = describe_failure(self._protocol, self._path, exc, fs)
        if described is None:
            return None
        return TargetError(f"{action} '{self.shown}'{tail}: {described[0]}", hint=described[1])

    def _error(self, action: str, after: str, exc: BaseException) -> TargetError:
        tail = f" {after}" if after else ""
        store_failure = self._store_failure(action, exc, tail)
        if store_failure is not None:
            return store_failure
        return TargetError(f"{action} '{self.shown}'{tail}: {type(exc).__name__}: {one_line(exc)}")



def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip('"')
    return value
