"""Signature-based, verified reuse as a Prefect cache policy.

Prefect keeps the cache record (a tiny pickled `TaskOutputs` naming the stored files) under the
signature key in the run's records folder beside the data. Before Prefect trusts a record, the
policy checks that the outputs it names still exist and match their manifest; a record whose
outputs are gone or changed is removed with a warning, so Prefect runs the task again instead of
reporting a hit for data that is not there.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from prefect.cache_policies import CachePolicy

from dbnd_prefect.versioning.manifest import read_manifest, verify_outputs

logger = logging.getLogger("dbnd_prefect")

# Signatures computed by the policy, handed to the task body of the same task run.
_signatures: dict[Any, Any] = {}
_lock = threading.Lock()


def take_signature(task_run_id: Any) -> Any:
    """The signature the policy computed for a task run (removed: each is taken once)."""
    with _lock:
        return _signatures.pop(task_run_id, None)


class SignaturePolicy(CachePolicy):
    """Cache key = the task run's signature; a hit only when its outputs verify."""

    def __init__(self, dbnd_task: Any) -> None:
        self.dbnd_task = dbnd_task

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        from dbnd_prefect.runtime import current_run

        run = current_run()
        signature = self.dbnd_task.signature_for(inputs, run)
        if task_ctx is not None:
            with _lock:
                _signatures[task_ctx.task_run.id] = signature
        key = run.storage.record_key(signature.digest) if run is not None else signature.digest
        store = getattr(task_ctx, "result_store", None) if task_ctx is not None else None
        if store is not None and run is not None:
            # One read, kept in the store's memory cache, serves Prefect's own read on a hit.
            record = read_record(store, key, run.storage.record_uri(signature.digest))
            reason = reuse_problem(record, signature.digest, run.verify == "full")
            if reason not in (None, NO_RECORD):
                logger.warning("Task '%s': not reusing stored outputs: %s; recomputing.", self.dbnd_task.name, reason)
                store.cache.pop(store._resolved_key_path(key), None)
                _delete_record(run.storage.record_uri(signature.digest))
        return key


NO_RECORD = "no cache record"


def read_record(store: Any, key: str, uri: str) -> Any:
    """The cache record under `key` (stored at `uri`), or None when there is none; an unreadable one is
    returned as the error. Existence is asked of the file system: block types report a missing key
    each in their own way."""
    from dbnd_prefect.targets import get_filesystem, split_uri

    protocol, path = split_uri(uri)
    try:
        # every task run asks this; on local disk a stat is 1.5 µs where fsspec's exists takes 18 µs
        found = os.path.exists(path) if protocol == "file" else get_filesystem(protocol).exists(path)
        if not found:
            return None
        return store.read(key)
    except Exception as exc:  # e.g. a record whose payload no longer unpickles, or an unreachable store
        return exc


def reuse_problem(record: Any, digest: str, full: bool) -> str | None:
    """Why a cache record must not be reused (NO_RECORD when there is none), or None when its outputs verify."""
    if record is None:
        return NO_RECORD
    if isinstance(record, Exception):
        return f"its cache record cannot be read ({record})"
    manifest_uri = getattr(record.result, "manifest_uri", None)
    if manifest_uri is None:
        return "its cache record names no manifest"
    manifest = read_manifest(manifest_uri)
    if manifest is None:
        return f"the manifest {manifest_uri} is missing"
    if manifest.get("signature") != digest:
        return f"the manifest {manifest_uri} belongs to another signature"
    return verify_outputs(manifest, full=full)


def _delete_record(uri: str) -> None:
    from dbnd_prefect.targets import get_filesystem, split_uri

    protocol, path = split_uri(uri)
    fs = get_filesystem(protocol)
    try:
        fs.rm(path)
    except FileNotFoundError:
        pass
