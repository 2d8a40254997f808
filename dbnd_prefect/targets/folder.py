"""Folder targets: a directory of part files read as one DataFrame, or one file per key of a dict.

A folder is what Spark, Dask, Hadoop or pandas (`partition_cols`) write: part files next to
meta files (names starting with `_` or `.`: `_SUCCESS`, `.part-0.crc`, `_common_metadata`).
Writers that commit with a `_SUCCESS` marker leave a folder without one only when they did not
finish; such a folder is refused rather than read half-written. A dict of DataFrames is written
as one file per key plus `_SUCCESS`, staged and moved into place (local) or marked last (stores).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from typing import TYPE_CHECKING, Any

from dbnd_prefect import plugins
from dbnd_prefect.errors import FormatError, TargetError
from dbnd_prefect.targets.atomic import new_hasher
from dbnd_prefect.targets.filesystem import split_uri
from dbnd_prefect.targets.formats import DATAFRAME, SERIES, Format, format_for_uri, type_key

if TYPE_CHECKING:
    from dbnd_prefect.targets.target import Target

SUCCESS_MARKER = "_SUCCESS"
# load option: True requires the marker, False ignores it, absent decides from the folder's writer
MARKER_OPTION = "success_marker"
_FRAME_TYPES = (DATAFRAME, SERIES)
_STAMP_KEYS = ("VersionId", "version_id", "generation", "ETag", "etag", "LastModified", "last_modified",
               "updated", "mtime", "created")  # created: memory:// keeps no other stamp


FOLDER_TYPE_KEYS = frozenset({DATAFRAME, SERIES, "dict", *(t.key for t in plugins.frame_types())})


def may_be_folder(uri: str, type_key_: str) -> bool:
    """Whether a data input of this type given `uri` is read as a folder (checked when it is loaded)."""
    if type_key_ not in FOLDER_TYPE_KEYS:
        return False
    if uri.endswith("/"):
        return True
    protocol, path = split_uri(uri)
    return protocol == "file" and os.path.isdir(path)


def is_meta_name(relative: str) -> bool:
    """Whether a file inside a folder is bookkeeping (markers, checksums, staging), not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


def is_frame_dict(value: Any) -> bool:
    """A non-empty dict whose keys are file-name-safe strings and whose values are DataFrames or Series."""
    return (
        isinstance(value, dict) and bool(value)
        and all(isinstance(k, str) and _safe_key(k) for k in value)
        and all(type_key(type(v)) in _FRAME_TYPES for v in value.values())
    )


def _safe_key(key: str) -> bool:
    return bool(key) and not key.startswith(("_", ".")) and "/" not in key and "\\" not in key and key == key.strip()


def listing(target: Target) -> dict[str, dict[str, Any]]:
    """Relative path (with "/") -> fsspec info of every file under the folder, sorted; missing folder -> {}."""
    fs, root = target.fs, target.path.rstrip("/")
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    except Exception as exc:
        raise target._error("cannot list", "", exc) from None
    out = {}
    for path, info in found.items():
        if info.get("type", "file") != "file":
            continue
        rel = posixpath.relpath(path.replace(os.sep, "/"), root.replace(os.sep, "/"))
        out[rel] = info
    return dict(sorted(out.items()))


def data_files(target: Target, files: dict[str, dict[str, Any]], require_marker: bool | None) -> list[str]:
    """The data files of a folder, after checking its `_SUCCESS` marker; TargetError when unreadable."""
    names = list(files)
    has_marker = SUCCESS_MARKER in names
    if any(n.split("/")[0] == "_temporary" for n in names) and not has_marker:
        raise TargetError(
            f"folder '{target.shown}' holds a '_temporary' directory and no {SUCCESS_MARKER} marker: "
            "its writer (Spark/Hadoop) has not finished or failed",
            hint="wait for the writer to finish, or rerun it",
        )
    parts = [n for n in names if not is_meta_name(n)]
    if require_marker is None:
        spark_like = any(posixpath.basename(n).startswith("part-") for n in parts) or any(
            n.endswith(".crc") for n in names
        )
        require_marker = spark_like
    if require_marker and not has_marker:
        raise TargetError(
            f"folder '{target.shown}' has no {SUCCESS_MARKER} marker: its writer did not finish "
            "(Spark and Hadoop write the marker last)",
            hint=f"rerun the writer; if this folder is complete without a marker, load it with "
            f"Data(load_options={{'{MARKER_OPTION}': False}})",
        )
    if not parts:
        raise _empty(target)
    return parts


def _empty(target: Target) -> TargetError:
    return TargetError(f"folder '{target.shown}' holds no data files",
                       hint="pass the path of a file, or of a folder of part files")


def _listed(target: Target) -> dict[str, dict[str, Any]]:
    """The folder's listing; TargetError when it is missing or empty."""
    files = listing(target)
    if files:
        return files
    if target.is_local and os.path.isdir(target.path):
        raise _empty(target)
    raise target._missing(None)


def check_folder_input(target: Target, type_key_: str, data: Any = None) -> bool:
    """Whether a data input (`target`, named with a trailing `/`) is read as a folder; for a local one, raise the
    error loading it would (no part read). `data` is the parameter's `Data` marker, if any."""
    if not may_be_folder(target.uri, type_key_):
        return False
    if target.is_local:
        options = getattr(data, "load_options", None) or {}
        data_files(target, _listed(target), options.get(MARKER_OPTION))
    return True


def part_format(target: Target, relative: str) -> tuple[Format, str | None]:
    """The format of one part: forced, else from the folder's name (`dir.csv/`), else from the part's name."""
    forced = target._forced
    if forced is None:
        try:
            return format_for_uri(target.uri.rstrip("/"))
        except FormatError:
            pass
    try:
        return format_for_uri(relative, forced)
    except FormatError as exc:
        raise FormatError(
            f"cannot tell the format of '{relative}' in folder '{target.shown}'",
            hint="name the folder after its format (e.g. 'sales.csv/') or force one with Data(format='csv')",
        ) from exc


def load_folder(target: Target, wanted: str | None, options: dict[str, Any]) -> Any:
    """The folder as one DataFrame (parts concatenated in name order) or, for a dict, {part stem: DataFrame}."""
    options = dict(options)
    require = options.pop(MARKER_OPTION, None)
    if wanted not in (None, "object", DATAFRAME, SERIES, "dict"):
        raise FormatError(
            f"folder '{target.shown}' loads as a pandas.DataFrame or a dict of them, not as {wanted}",
            hint="annotate the parameter as DataFrame or Dict[str, DataFrame], or pass a file",
        )
    parts = data_files(target, _listed(target), require)
    base = target.uri.rstrip("/")
    loaded = {}
    for rel in parts:
        fmt, _ = part_format(target, rel)
        part = type(target)(f"{base}/{rel}", format=fmt.name)
        loaded[rel] = part.load(DATAFRAME, **options)
    if wanted == "dict":
        return {_stem(rel): frame for rel, frame in loaded.items()}
    import pandas as pd

    frames = [_with_partition_columns(rel, frame) for rel, frame in loaded.items()]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if wanted == SERIES:
        if frame.shape[1] != 1:
            raise FormatError(f"folder '{target.shown}' has {frame.shape[1]} columns; a pandas.Series needs one")
        return frame.iloc[:, 0]
    return frame


def _with_partition_columns(relative: str, frame: Any) -> Any:
    """A part of a Hive-partitioned folder (`year=2024/...`) with its partition values as columns (str)."""
    pairs = [seg.split("=", 1) for seg in relative.split("/")[:-1] if "=" in seg]
    missing = {k: v for k, v in pairs if k not in frame.columns}
    return frame.assign(**missing) if missing else frame


def _stem(relative: str) -> str:
    """A part's key: its path without the format extension and compression suffix ("2024/a.csv.gz" -> "2024/a")."""
    name = posixpath.basename(relative)
    head = posixpath.dirname(relative)
    stem = name.split(".", 1)[0] or name
    return f"{head}/{stem}" if head else stem


def save_folder(target: Target, value: Any, fmt: Format, compression_suffix: str, options: dict[str, Any]) -> None:
    """Write a dict of DataFrames (or one DataFrame as `part-0000`) as one file per key plus `_SUCCESS`."""
    items = value if isinstance(value, dict) else {"part-0000": value}
    if not is_frame_dict(items):
        raise FormatError(
            f"a folder holds DataFrames or a dict of them with plain string keys, not {type_key(type(value))}",
            hint="keys must be non-empty names without '/' that do not start with '_' or '.'",
        )
    base = target.uri.rstrip("/")
    if target.is_local:
        staging = os.path.join(os.path.dirname(base), f".{os.path.basename(base)}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            _write_parts(type(target), staging, items, fmt, compression_suffix, options)
            if os.path.isdir(base):
                shutil.rmtree(base)  # a folder that failed verification: replaced whole
            os.replace(staging, base)
        finally:
            if os.path.isdir(staging):
                shutil.rmtree(staging, ignore_errors=True)
        return
    fs = target.fs
    if fs.exists(target.path):
        fs.rm(target.path, recursive=True)
    _write_parts(type(target), base, items, fmt, compression_suffix, options)


def _write_parts(target_cls: type, base: str, items: dict[str, Any], fmt: Format, suffix: str,
                 options: dict[str, Any]) -> None:
    for key, frame in items.items():
        target_cls(f"{base}/{key}{fmt.extensions[0]}{suffix}", format=fmt.name).save(frame, **options)
    with target_cls(f"{base}/{SUCCESS_MARKER}").writer("wb"):
        pass  # the marker is written last: a folder without it is unfinished


def folder_info(target: Target) -> dict[str, Any]:
    """Total size and file count of a folder, from one listing."""
    files = _listed(target)
    return {"uri": target.uri, "size": sum(int(i.get("size") or 0) for i in files.values()), "files": len(files)}


def folder_fingerprint(target: Target) -> str:
    """A digest of the folder's listing (names, sizes, versions or mtimes): no file is read."""
    files = _listed(target)
    hasher = new_hasher()
    for rel, info in files.items():
        stamp = next((str(info[k]) for k in _STAMP_KEYS if info.get(k) not in (None, "")), "")
        hasher.update(f"{rel}\0{info.get('size')}\0{stamp}\n".encode())
    return f"listing:{len(files)}:{hasher.hexdigest()}"


def folder_checksum(target: Target) -> str:
    """A digest of every file's name and content, in name order."""
    files = _listed(target)
    hasher = new_hasher()
    base = target.uri.rstrip("/")
    for rel in files:
        hasher.update(f"{rel}\0{type(target)(f'{base}/{rel}').checksum()}\n".encode())
    return hasher.hexdigest()
