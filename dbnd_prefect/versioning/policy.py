"""Signature-based reuse as a Prefect cache policy.

Prefect keeps the cache record (a tiny pickled `TaskOutputs` naming the stored files) under the
signature key in the run's records folder beside the data, and reuses it on a later call with the
same signature. A record whose outputs are gone or changed never reaches Prefect: `verify.drop_if_broken`
removes it (with a warning) before the call is submitted. A record that is not byte for byte as it was
written is refused by the RecordStore (record_store.py) whenever it is read, Prefect's cache lookup
included, before anything in it is unpickled.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import CachePolicy

from dbnd_prefect.prefect_ui.labels import label_task_run


class SignaturePolicy(CachePolicy):
    """Cache key = the record key of the task run's signature, carried by its `BoundCall`.

    A pure function of the call: the signature was computed when the call was bound, and whether a
    stored version still verifies was checked before it was submitted (versioning/verify.py).
    """

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str:
        call = inputs["call"]
        # Prefect asks every versioned task run, reused or not, for its key: the moment to label the run
        label_task_run(getattr(task_ctx, "task_run", None), call, call.record_key)
        return call.record_key
