"""Retention: which stored versions `dbnd gc` removes, pins that keep a version, and what crashes left behind.

A version (one `{root}/{env}/{date}/{task}/{task}_{signature16}/` folder) stays when it is among the newest
`keep_last` of its task, newer than `older_than`, pinned (`{root}/.dbnd/pins/{signature}.json`), created or
used (by a run record) within `grace`, or an input of a version that stays, upstream across tasks and
environments. The rest is removed whole, what makes it valid first: the Prefect cache record, then the
manifest, then the data, so a half-removed version is never taken for a valid one. Orphans go too: version
folders without a manifest, staging files (`.NAME.<12 hex>.tmp`) and `.unsaved.pkl` files older than `grace`.
Nothing is removed unless `apply=True`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dbnd_prefect import layout
from dbnd_prefect.api.gc_files import (
    listing,
    mtime_of,
    prune_empty,
    read_json,
    remove,
    when,
)
from dbnd_prefect.api.pins import PINS_DIR, read_pins
from dbnd_prefect.errors import ConfigError, DbndError

DEFAULTS = {"keep_last": 3, "older_than": "7d", "grace": "1h"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"s": 1, "": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_STAGING = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
_VERSION_DIR = re.compile(r"^.+_[0-9a-f]{16}$")


def parse_duration(value: Any, name: str) -> dt.timedelta:
    """`90s`, `30m`, `12h`, `7d`, `2w` (a bare number is seconds); ConfigError naming `name` otherwise."""
    match = _DURATION.match(str(value)) if value is not None and not isinstance(value, bool) else None
    if match is None:
        raise ConfigError(f"{name}: {value!r} is not a duration", hint="use a number with s, m, h, d or w, e.g. 12h or 7d")
    return dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def _count(value: Any, name: str) -> int:
    try:
        count = int(str(value))
    except ValueError:
        count = -1
    if count < 0:
        raise ConfigError(f"{name}: {value!r} is not a count", hint="use a whole number >= 0, e.g. 3")
    return count


@dataclasses.dataclass
class StoredVersion:
    """One version folder with a manifest; `keep` says why it stays (None: it is removed)."""

    task: str
    signature: str
    env: str
    folder: str  # a path of the root's file system
    manifest: dict[str, Any]
    ended: dt.datetime
    bytes: int = 0
    modified: float = 0.0  # newest file's modification time (epoch seconds)
    manifest_modified: float = 0.0
    keep: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"task": self.task, "signature": self.signature, "ended": self.ended.isoformat(),
                "bytes": self.bytes, "uri": self.folder, "kept": self.keep}


@dataclasses.dataclass
class Orphan:
    uri: str  # a path of the root's file system
    kind: str
    bytes: int
    modified: float


@dataclasses.dataclass
class GcReport:
    root: str
    env: str
    keep_last: int
    older_than: dt.timedelta
    grace: dt.timedelta
    applied: bool
    versions: list[StoredVersion]
    orphans: list[Orphan]
    skipped: list[str] = dataclasses.field(default_factory=list)

    @property
    def removed(self) -> list[StoredVersion]:
        return [v for v in self.versions if v.keep is None]

    @property
    def freed(self) -> int:
        return sum(v.bytes for v in self.removed) + sum(o.bytes for o in self.orphans)

    def by_task(self) -> dict[str, list[StoredVersion]]:
        tasks: dict[str, list[StoredVersion]] = {}
        for version in self.versions:
            tasks.setdefault(version.task, []).append(version)
        return dict(sorted(tasks.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "root": self.root, "env": self.env, "applied": self.applied, "keep_last": self.keep_last,
            "older_than_seconds": self.older_than.total_seconds(), "grace_seconds": self.grace.total_seconds(),
            "tasks": {task: {"remove": [v.as_json() for v in vs if v.keep is None],
                             "keep": [v.as_json() for v in vs if v.keep is not None],
                             "bytes": sum(v.bytes for v in vs if v.keep is None)}
                      for task, vs in self.by_task().items()},
            "orphans": [dataclasses.asdict(o) for o in self.orphans],
            "removed_versions": len(self.removed), "bytes": self.freed, "skipped": self.skipped,
        }


def resolve_root(config: Any = None, env: str | None = None, cwd: str | None = None) -> tuple[str, str, Any]:
    """(data root, env, ResolvedConfig) of the project configuration in `cwd` (or `config`)."""
    from dbnd_prefect.api.run import build_config, data_root_of

    resolved = config if config is not None else build_config(cwd or Path.cwd(), env=env)
    return data_root_of(resolved), resolved.settings.env, resolved


def gc(root: str | None = None, env: str | None = None, *, keep_last: int | None = None,
       older_than: str | dt.timedelta | None = None, grace: str | dt.timedelta | None = None,
       tasks: Sequence[str] | None = None, apply: bool = False, config: Any = None,
       now: dt.datetime | None = None) -> GcReport:
    """What retention removes under a data root (`root`, `env`; default: the project's), removed when `apply`.

    Unset limits come from the `[gc]` configuration section (`keep_last`, `older_than`, `grace`), then
    DEFAULTS. `tasks`: only these task names (others stay untouched)."""
    if root is None or config is not None:
        found_root, found_env, config = resolve_root(config, env)
        root, env = root or found_root, env or found_env
    section = config.config if config is not None else None

    def setting(key: str, given: Any, flag: str) -> tuple[Any, str]:
        """The value to use and the name of where it came from, for an error naming the culprit."""
        if given is not None:
            return given, flag
        found = section.get_value("gc", key) if section is not None else None
        return (found.value, f"gc.{key} ({found.source})") if found is not None else (DEFAULTS[key], f"gc.{key}")

    keep = _count(*setting("keep_last", keep_last, "--keep-last"))
    older = older_than if isinstance(older_than, dt.timedelta) else \
        parse_duration(*setting("older_than", older_than, "--older-than"))
    grace_period = grace if isinstance(grace, dt.timedelta) else parse_duration(*setting("grace", grace, "grace"))
    now = now or dt.datetime.now(dt.timezone.utc)
    env = env or "local"
    scan = _scan(root, env, now, grace_period)
    chosen = [v for v in scan.versions if v.env == env and (tasks is None or v.task in tasks)]
    _decide(chosen, scan, keep, older, grace_period, now)
    report = GcReport(root, env, keep, older, grace_period, apply, chosen, scan.orphans if tasks is None else [],
                      [f"{path}: unreadable manifest, left alone" for path in scan.unreadable])
    covered = {v.folder for v in report.removed}  # removed whole: what is inside needs no removal of its own
    report.orphans = [o for o in report.orphans if not any(o.uri.startswith(f + "/") for f in covered)]
    if apply:
        _apply(report, scan)
    return report


@dataclasses.dataclass
class _Scan:
    fs: Any
    base: str
    versions: list[StoredVersion]  # every env's, for lineage
    orphans: list[Orphan]
    pinned: set[str]
    used: set[str]  # signatures a run record made or reused within the grace period
    unreadable: list[str]  # version folders whose manifest could not be read: left alone


def _scan(root: str, env: str, now: dt.datetime, grace: dt.timedelta) -> _Scan:
    """One listing of the root: version folders with their manifests, orphans, pins and recent use."""
    from dbnd_prefect.targets.filesystem import filesystem_for_uri

    fs, base = filesystem_for_uri(root)
    base = base.rstrip("/")
    cutoff = (now - grace).timestamp()
    folders: dict[tuple[str, ...], dict[str, Any]] = {}
    loose: dict[tuple[str, ...], list[tuple[int, float]]] = {}
    runs, pins = [], []
    for path, size, modified in listing(fs, base):
        parts = tuple(path[len(base) + 1:].split("/"))
        if parts[0] == layout.STORE_DIR:
            if parts[1:2] == (layout.RUNS_DIR,) and modified >= cutoff:
                runs.append(path)
            elif parts[1:2] == (PINS_DIR,):
                pins.append(path)
            continue
        staging = next((i for i, p in enumerate(parts) if _STAGING.match(p)), None)
        if staging is not None or parts[-1].endswith(".unsaved.pkl"):
            loose.setdefault(parts[:staging + 1] if staging is not None else parts, []).append((size, modified))
        if len(parts) >= 5 and _VERSION_DIR.match(parts[3]):
            folder = folders.setdefault(parts[:4], {"bytes": 0, "modified": 0.0, "manifest": None})
            folder["bytes"] += size
            folder["modified"] = max(folder["modified"], modified)
            if len(parts) == 5 and parts[4] == layout.MANIFEST_NAME:
                folder["manifest"] = (path, modified)
    versions, orphans, unreadable = [], [], []
    for key, folder in sorted(folders.items()):
        path = "/".join([base, *key])
        manifest = read_json(fs, folder["manifest"][0]) if folder["manifest"] else None
        if folder["manifest"] and (manifest is None or not manifest.get("signature")):
            unreadable.append(path)  # a store that failed to answer must never cost a version: kept, and said so
            continue
        if manifest is None:
            if key[0] == env and folder["modified"] < cutoff:
                orphans.append(Orphan(path, "no manifest (a crashed or unfinished run)", folder["bytes"], folder["modified"]))
            continue
        versions.append(StoredVersion(str(manifest.get("task") or key[2]), str(manifest["signature"]), key[0], path,
                                      manifest, when(manifest.get("ended")), folder["bytes"], folder["modified"],
                                      folder["manifest"][1]))
    gone = tuple(o.uri + "/" for o in orphans)
    for unit, infos in sorted(loose.items()):
        modified = max(m for _, m in infos)
        if unit[0] == env and modified < cutoff and not "/".join([base, *unit]).startswith(gone):
            kind = "staging left by an interrupted write" if _STAGING.match(unit[-1]) else "value kept by a failed write"
            orphans.append(Orphan("/".join([base, *unit]), kind, sum(n for n, _ in infos), modified))
    used = {str(entry.get("signature")) for path in runs if (record := read_json(fs, path))
            for entry in record.get("task_runs", []) if entry.get("signature")}
    pinned = {(read_json(fs, path) or {}).get("signature") or path.rsplit("/", 1)[-1][:-5] for path in pins}
    return _Scan(fs, base, versions, orphans, pinned, used, unreadable)


def _decide(chosen: list[StoredVersion], scan: _Scan, keep_last: int, older: dt.timedelta,
            grace: dt.timedelta, now: dt.datetime) -> None:
    newest: dict[str, int] = {}
    for version in sorted(chosen, key=lambda v: v.ended, reverse=True):
        rank = newest[version.task] = newest.get(version.task, 0) + 1
        created = max(version.ended.timestamp(), version.modified)
        if version.signature in scan.pinned:
            version.keep = "pinned"
        elif rank <= keep_last:
            version.keep = f"among the newest {keep_last}"
        elif version.ended > now - older:
            version.keep = "newer than --older-than"
        elif created >= (now - grace).timestamp() or version.signature in scan.used:
            version.keep = "created or used within the grace period"
    candidates = {id(v) for v in chosen}
    for version in scan.versions:  # other envs' and other tasks' versions all stay
        if id(version) not in candidates:
            version.keep = version.keep or "not considered"
    by_signature: dict[str, list[StoredVersion]] = {}
    by_folder = {v.folder: v for v in scan.versions}
    for version in scan.versions:
        by_signature.setdefault(version.signature, []).append(version)
    todo = [v for v in scan.versions if v.keep is not None]
    while todo:  # lineage: whatever a kept version read stays, upstream all the way
        user = todo.pop()
        for item in user.manifest.get("inputs", []):
            upstream = list(by_signature.get(str(item.get("producer_signature")), []))
            folder = _folder_of(scan.base, str(item.get("uri") or ""))
            if folder in by_folder:
                upstream.append(by_folder[folder])
            for version in upstream:
                if version.keep is None:
                    version.keep = f"input of {user.task} {user.signature[:layout.SIGNATURE_LENGTH]}"
                    todo.append(version)


def _folder_of(base: str, uri: str) -> str | None:
    from dbnd_prefect.targets import split_uri

    path = split_uri(uri)[1] if uri else ""
    if not path.startswith(base + "/"):
        return None
    parts = path[len(base) + 1:].split("/")
    return "/".join([base, *parts[:4]]) if len(parts) >= 5 else None


def _apply(report: GcReport, scan: _Scan) -> None:
    """Remove what the report says, each version validity first; what changed since the scan is skipped."""
    fs, base = scan.fs, scan.base
    pinned = read_pins(fs, base)
    staying = {v.signature for v in scan.versions if v.keep is not None}
    for version in report.removed:
        manifest_path = f"{version.folder}/{layout.MANIFEST_NAME}"
        if not version.folder.startswith(f"{base}/{report.env}/") or version.folder.count("/") != base.count("/") + 4:
            raise DbndError(f"dbnd gc: refusing to remove {version.folder}: not a version folder under {base}")
        if version.signature in pinned or mtime_of(fs, manifest_path) != version.manifest_modified:
            version.keep = "pinned or rewritten since the scan"
            report.skipped.append(f"{version.folder}: pinned or rewritten since the scan")
            continue
        if version.signature not in staying:
            remove(fs, f"{base}/{layout.STORE_DIR}/{layout.RECORDS_DIR}/{version.signature}")
        remove(fs, manifest_path)
        remove(fs, version.folder, recursive=True)
        prune_empty(fs, version.folder, f"{base}/{report.env}")
    removed = []
    for orphan in report.orphans:
        if not orphan.uri.startswith(f"{base}/{report.env}/") or (
                orphan.kind.startswith("no manifest") and mtime_of(fs, f"{orphan.uri}/{layout.MANIFEST_NAME}")):
            report.skipped.append(f"{orphan.uri}: completed since the scan")  # its run finished meanwhile
            continue
        remove(fs, orphan.uri, recursive=True)
        removed.append(orphan)
        prune_empty(fs, orphan.uri, f"{base}/{report.env}")
    report.orphans = removed

