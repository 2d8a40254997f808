"""Where a signature's parts are computed: digests of data values and of a task's code.

`fingerprint_value(obj)` digests an in-memory value by type and content; `fingerprint_code(func)` and
`describe_code(func)` digest a function's source together with the project functions and classes it uses.
All digests are hex xxh3-128 strings, identical across processes and Python hash seeds.
"""

from __future__ import annotations

from dbnd_prefect.versioning.fingerprint_code import describe_code, fingerprint_code
from dbnd_prefect.versioning.fingerprint_data import (
    UnfingerprintableValueError,
    clear_fingerprint_cache,
    fingerprint_value,
)

__all__ = [
    "UnfingerprintableValueError",
    "clear_fingerprint_cache",
    "describe_code",
    "fingerprint_code",
    "fingerprint_value",
]
