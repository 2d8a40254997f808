"""The file work of `dbnd gc`: one listing of a data root, small JSON reads, removals; local roots through os.

fsspec's local file system stats each file several times while walking; a local root is walked with
os.scandir instead, any other in one recursive listing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any


def listing(fs: Any, base: str) -> Iterator[tuple[str, int, float]]:
    """Every file under `base`: (path, bytes, modified); a local root with os.scandir (fsspec's find stats each
    file three times), any other in one recursive listing."""
    if not is_local(fs):
        try:
            found = fs.find(base, detail=True)
        except (FileNotFoundError, OSError):
            return
        for path, info in found.items():
            yield path, int(info.get("size") or 0), mtime(info)
        return
    import os

    todo = [base]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for item in entries:
            if item.is_dir(follow_symlinks=False):
                todo.append(item.path)
            elif item.is_file(follow_symlinks=False):
                stat = item.stat(follow_symlinks=False)
                yield item.path, stat.st_size, stat.st_mtime


def is_local(fs: Any) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))


def remove(fs: Any, path: str, recursive: bool = False) -> None:
    try:
        fs.rm(path, recursive=recursive)
    except FileNotFoundError:
        pass


def prune_empty(fs: Any, path: str, stop: str) -> None:
    """Remove the local folders above `path` that the removal left empty, up to `stop`."""
    if not is_local(fs):
        return
    import os

    parent = os.path.dirname(path)
    while parent.startswith(stop + "/"):
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)


def mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("updated")
    if isinstance(value, dt.datetime):
        return value.timestamp()
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return when(str(value)).timestamp()


def mtime_of(fs: Any, path: str) -> float | None:
    try:
        return mtime(fs.info(path))
    except (FileNotFoundError, OSError):
        return None


def when(text: Any) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def read_json(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        with (open(path, "rb") if is_local(fs) else fs.open(path, "rb")) as f:
            document = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
