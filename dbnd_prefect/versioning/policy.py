"""Signature-based, verified reuse as a Prefect cache policy.

Prefect keeps the cache record (a tiny pickled `TaskOutputs` naming the stored files) under the
signature key in the run's records folder beside the data. Before Prefect trusts a record, the
policy checks that the outputs it names still exist and match their manifest; a record whose
outputs are gone or changed is removed with a warning, so Prefect runs the task again instead of
reporting a hit for data that is not there.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prefect.cache_policies import CachePolicy

from dbnd_prefect.versioning.verify import NO_RECORD, delete_record, read_record, reuse_problem

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
                delete_record(run.storage.record_uri(signature.digest))
        return key
