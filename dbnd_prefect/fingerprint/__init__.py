"""Pure digests: of data values, of a task's code, and the signature that combines them.

`fingerprint_value(obj)` digests an in-memory value by type and content; `fingerprint_code(func)` and
`describe_code(func)` digest a function's source together with the project functions and classes it uses;
`compute_signature(...)` combines a task run's parts. All digests are hex xxh3-128 strings, identical
across processes and Python hash seeds. Nothing here does I/O or knows of Prefect, targets or runs.
"""

from __future__ import annotations

from dbnd_prefect.fingerprint.code import describe_code, fingerprint_code
from dbnd_prefect.fingerprint.data import clear_fingerprint_cache, fingerprint_value
from dbnd_prefect.fingerprint.signature import Signature, compute_signature

__all__ = [
    "Signature",
    "clear_fingerprint_cache",
    "compute_signature",
    "describe_code",
    "fingerprint_code",
    "fingerprint_value",
]
