"""What a reader of a data root finds after a fault, checked without the library's own verification:
files listed with fsspec, outputs hashed with xxhash and parsed with pyarrow / json directly."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import xxhash

MANIFEST = "_manifest.json"


@dataclass
class RootState:
    """The data root as found: cache records, manifests, leftovers, and every broken promise."""

    records: set[str] = field(default_factory=set)  # signatures that have a cache record
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # signature -> manifest
    outputs: int = 0  # output files at their final paths
    orphans: list[str] = field(default_factory=list)  # output files in a folder without a manifest (never reused)
    staging: list[str] = field(default_factory=list)  # hidden staging files a killed write left behind
    run_records: int = 0
    problems: list[str] = field(default_factory=list)

    def complete(self) -> set[str]:
        """Signatures whose record, manifest and outputs are all in place (what a re-run must reuse)."""
        return {s for s in self.records if s in self.manifests}

    def labels(self, signatures: set[str]) -> set[str]:
        return {label(self.manifests[s]) for s in signatures if s in self.manifests}


def label(manifest: dict[str, Any]) -> str:
    """`task i=3` / `task k=0` / `task`: how the reliability pipeline's notes name a task call."""
    params = manifest.get("parameters", {})
    extra = "".join(f" {name}={params[name]}" for name in ("i", "k") if name in params)
    return f"{manifest['task']}{extra}"


def filesystem(root: str) -> tuple[Any, str]:
    """A file system that lists afresh on every call, and the root's path in it."""
    import fsspec

    if "://" in root:
        protocol, _, path = root.partition("://")
        return fsspec.filesystem(protocol, skip_instance_cache=True, use_listings_cache=False), path.rstrip("/")
    return fsspec.filesystem("file"), root.rstrip("/")


def checksum(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def _parses(name: str, data: bytes) -> str | None:
    """Why a stored file is not a complete file of its format, or None."""
    try:
        if name.endswith(".parquet"):
            import io

            import pyarrow.parquet as pq

            pq.read_table(io.BytesIO(data))
        elif name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".npy"):
            import io

            import numpy as np

            np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def inspect_root(root: str) -> RootState:
    """Every file under `root`, classified and checked (see RootState)."""
    fs, base = filesystem(root)
    state = RootState()
    try:
        paths = sorted(fs.find(base))
    except FileNotFoundError:
        return state
    folders: dict[str, list[str]] = {}
    for path in paths:
        rel = path[len(base):].lstrip("/")
        name = posixpath.basename(rel)
        if name.startswith(".") and name.endswith(".tmp"):
            state.staging.append(rel)
        elif rel.startswith(".dbnd/prefect-records/"):
            state.records.add(name)
            try:
                json.loads(fs.cat_file(path))
            except Exception as exc:  # noqa: BLE001
                state.problems.append(f"cache record {rel} is not a complete record: {exc}")
        elif rel.startswith(".dbnd/runs/"):
            state.run_records += 1
            try:
                json.loads(fs.cat_file(path))
            except Exception as exc:  # noqa: BLE001
                state.problems.append(f"run record {rel} is not complete JSON: {exc}")
        else:
            folders.setdefault(posixpath.dirname(path), []).append(name)
    for folder, names in folders.items():
        rel_folder = folder[len(base):].lstrip("/")
        manifest = None
        if MANIFEST in names:
            try:
                manifest = json.loads(fs.cat_file(f"{folder}/{MANIFEST}"))
            except Exception as exc:  # noqa: BLE001
                state.problems.append(f"manifest in {rel_folder} is not complete JSON: {exc}")
        for name in names:
            if name == MANIFEST:
                continue
            state.outputs += 1
            data = fs.cat_file(f"{folder}/{name}")
            why = _parses(name, data)
            if why:
                state.problems.append(f"partial output visible at {rel_folder}/{name}: {why}")
            if manifest is None:
                state.orphans.append(f"{rel_folder}/{name}")
        if manifest is None:
            continue
        signature = manifest["signature"]
        if not posixpath.basename(folder).endswith(signature[:16]):
            state.problems.append(f"manifest in {rel_folder} is for signature {signature}")
        state.manifests[signature] = manifest
        for out_name, info in manifest["outputs"].items():
            inner = filesystem(info["uri"])[1]
            if not fs.exists(inner):
                state.problems.append(f"manifest {rel_folder} lists output '{out_name}' but it is missing")
                continue
            data = fs.cat_file(inner)
            if len(data) != info["bytes"] or checksum(data) != info["checksum"]:
                state.problems.append(f"output '{out_name}' in {rel_folder} does not match its manifest")
    for signature in state.records - set(state.manifests):
        state.problems.append(f"cache record {signature} has no manifest: a reuse would return nothing valid")
    return state
