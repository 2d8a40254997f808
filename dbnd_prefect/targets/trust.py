"""Which pickle files a task may load. Unpickling runs code the file names, so only pickles under the run's
data root (what this project's runs wrote) load unless the user allows others explicitly."""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING

from dbnd_prefect.errors import DbndError, TargetError

if TYPE_CHECKING:
    from dbnd_prefect.targets.target import Target

ALLOW_HINT = ("if you trust the file, allow it: set run.allow_foreign_pickle = true (dbnd.toml [run], "
              "--set run.allow_foreign_pickle=true or DBND__RUN__ALLOW_FOREIGN_PICKLE=true), or annotate the "
              "parameter with Data(allow_pickle=True)")


def refuse_foreign_pickle(target: "Target", data_root: str, allowed: bool = False) -> None:
    """Raise TargetError when `target` is a pickle outside `data_root` (a local path or URI) and not `allowed`."""
    if allowed or _format_name(target) != "pickle" or under_root(target.uri, data_root):
        return
    kind = "a local file" if target.is_local else "a remote file"
    raise TargetError(
        f"refusing to load the pickle '{target.shown}': it is {kind} outside the data root and loading a pickle "
        "runs code from the file", hint=ALLOW_HINT)


def _format_name(target: "Target") -> str | None:
    if target.is_folder():
        return None
    try:
        return target.format.name
    except DbndError:  # no known format: loading it reports that
        return None


def under_root(uri: str, data_root: str) -> bool:
    """Whether `uri` names a file inside `data_root` (local paths with symlinks resolved)."""
    from dbnd_prefect.targets.filesystem import split_uri

    protocol, path = split_uri(uri)
    root_protocol, root = split_uri(data_root)
    if protocol != root_protocol:
        return False
    if protocol == "file":
        path, root = os.path.realpath(path), os.path.realpath(root)
        return path.startswith(root.rstrip(os.sep) + os.sep)
    return posixpath.normpath(path).startswith(posixpath.normpath(root).rstrip("/") + "/")
