"""`dbnd run TASK --help` without importing the project (and so Prefect) when nothing it shows can have changed.

Showing a task's parameters means importing its module, which imports Prefect (about 1 s). The text a help
call printed is kept under the cache folder with what it depended on: the command line, the working directory,
the `DBND__` and `PYTHONPATH` variables, and the size and modification time of every source file it had
imported from outside installed packages (the project's modules, an editable dbnd_prefect) and of every
configuration file it could have read. The next identical call prints it if all of those are unchanged; any
difference, a missing entry or an unreadable one means the task is imported and the help computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from pathlib import Path
from typing import Iterable, Sequence

from dbnd_prefect.layout import cache_dir

_VERSION = 1  # of the entry format
enabled = False  # set by the `dbnd` process (cli.main); a call in process (tests, notebooks) always computes




def lookup(argv: Sequence[str]) -> str | None:
    """The help text an identical earlier call printed, if nothing it depended on has changed; else None."""
    if not enabled:
        return None
    try:
        entry = json.loads(_entry_path(argv).read_text(encoding="utf-8"))
        if entry.get("version") != _VERSION:
            return None
        if any(_stamp(path) != stamp for path, stamp in entry["files"].items()):
            return None
        return str(entry["text"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store(argv: Sequence[str], text: str, conf_files: Iterable[str] = ()) -> None:
    """Keep `text` as the help of `argv`, with the stamps of the files it depended on (best effort)."""
    if not enabled:
        return
    files = {path: _stamp(path) for path in sorted({*_source_files(), *_config_candidates(conf_files)})}
    path = _entry_path(argv)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staging.write_text(json.dumps({"version": _VERSION, "files": files, "text": text}), encoding="utf-8")
        os.replace(staging, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next call its speed


def _entry_path(argv: Sequence[str]) -> Path:
    environment = sorted((key, value) for key, value in os.environ.items()
                         if key.startswith("DBND__") or key in ("PYTHONPATH", "DBND_CONF"))
    key = json.dumps([list(argv), os.getcwd(), environment, sys.executable], sort_keys=True)
    return cache_dir() / "task-help" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def _stamp(path: str) -> list[int] | None:
    """(size, modification time in ns) of `path`, None when it does not exist."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return [found.st_size, found.st_mtime_ns]


def _source_files() -> set[str]:
    """The source files of the modules this process imported from outside the standard library and the
    installed packages."""
    installed = {os.path.realpath(p) for p in {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib",
                                                                                         "purelib", "platlib")}}
    found = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.endswith(".py"):
            real = os.path.realpath(path)
            if not any(real.startswith(root + os.sep) for root in installed):
                found.add(real)
    return found


def _config_candidates(conf_files: Iterable[str]) -> set[str]:
    """Every configuration file a run could read from here: the project files in the working directory and
    each folder above it (present or not: one created later changes the configuration), and `conf_files`."""
    from dbnd_prefect.config.files import PREFECT_READS, PROJECT_FILES

    cwd = Path.cwd()
    found = {os.path.abspath(path) for path in conf_files}
    for folder in (cwd, *cwd.parents):
        found.update(str(folder / name) for name in (*PROJECT_FILES, *PREFECT_READS))
    return found


__all__ = ["lookup", "store"]
