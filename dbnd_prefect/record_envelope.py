"""dbnd's envelope around a Prefect cache record, and how to read one without Prefect.

On disk a record is one JSON object with a fixed head, the xxh3_128 digest of Prefect's record and that
record byte for byte:

    {"dbnd_record":1,"xxh3_128":"<32 hex digits>","record":{"metadata":{...},"result":"<pickle>"}}

`unseal` returns Prefect's record only when the head, the digest, the key it was written under and the
serializer it names (one of `SERIALIZERS`) all hold; `decode` then unpickles its result. Prefect reads
records through record_store.py, which uses the same checks; read-only commands (`dbnd plan`) read them
here, so they need not import Prefect.
"""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import xxhash

_HEAD = b'{"dbnd_record":1,"xxh3_128":"'
_MID = b'","record":'
_DIGEST = 32  # hex digits of an xxh3_128 digest
_BODY = len(_HEAD) + _DIGEST + len(_MID)


class CorruptRecord(ValueError):
    """A cache record that does not verify (edited, truncated, forged): nothing in it is decoded."""


class UnsealedRecord(ValueError):
    """A Prefect record stored without dbnd's digest (by an older dbnd_prefect): not reusable."""


def loads_sealed_pickle(blob: bytes) -> Any:
    """What `RecordSerializer` wrote (`<32 hex>:<base64 pickle>`), unpickled only when the digest holds."""
    digest, sep, encoded = bytes(blob).partition(b":")
    try:
        data = base64.b64decode(encoded, validate=True)
    except ValueError:
        data = None
    if not sep or data is None or xxhash.xxh3_128_hexdigest(data).encode() != digest:
        raise CorruptRecord("its pickled outputs do not match their digest")
    return pickle.loads(data)


# The serializers a dbnd cache record may name, as Prefect writes them into the record: the pickle that
# engine/prefect_tasks.py configures for versioned tasks, and RecordSerializer. A record naming any other
# (cloudpickle, json, compressed...) is refused before Prefect picks that serializer to decode it.
SERIALIZERS: tuple[dict[str, Any], ...] = (
    {"type": "pickle", "picklelib": "pickle", "picklelib_version": None},
    {"type": "dbnd-pickle"},
)


def seal(record: bytes) -> bytes:
    """Prefect's serialized record in dbnd's envelope: its digest first, then the record byte for byte."""
    return b"".join((_HEAD, xxhash.xxh3_128_hexdigest(record).encode(), _MID, record, b"}"))


def unseal(data: bytes, key: str) -> bytes:
    """Prefect's record inside the sealed record `data` stored under `key`, verified whole.

    CorruptRecord unless every byte is as written and the record names `key` and a dbnd serializer;
    UnsealedRecord for a plain Prefect record (written before records were sealed)."""
    if not data.startswith(_HEAD):
        if _plain_record(data):
            raise UnsealedRecord("it was written without a digest (by an older dbnd_prefect)")
        raise CorruptRecord("it is not a dbnd cache record")
    if len(data) <= _BODY or data[_BODY - len(_MID):_BODY] != _MID or not data.endswith(b"}"):
        raise CorruptRecord("its envelope is damaged")
    digest, record = data[len(_HEAD):len(_HEAD) + _DIGEST], data[_BODY:-1]
    if xxhash.xxh3_128_hexdigest(record).encode() != digest:
        raise CorruptRecord("its bytes do not match the digest it was written with")
    _check_record(record, key)
    return record


def _plain_record(data: bytes) -> bool:
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and set(parsed) == {"metadata", "result"}


def _check_record(record: bytes, key: str) -> None:
    """CorruptRecord unless `record` is a Prefect record of the fixed shape, for `key`, naming a dbnd serializer."""
    try:
        parsed = json.loads(record)
    except ValueError:
        raise CorruptRecord("it is not JSON") from None
    if not isinstance(parsed, dict) or set(parsed) != {"metadata", "result"} \
            or not isinstance(parsed["metadata"], dict) or not isinstance(parsed["result"], str):
        raise CorruptRecord("it is not a Prefect result record")
    metadata = parsed["metadata"]
    if metadata.get("serializer") not in SERIALIZERS:
        named = metadata.get("serializer")
        named = named.get("type") if isinstance(named, dict) else named
        raise CorruptRecord(f"it names the serializer {named!r}, not one dbnd writes records with")
    if metadata.get("storage_key") != key:
        raise CorruptRecord(f"it was written for the key {metadata.get('storage_key')!r}, not {key!r}")


def decode(record: bytes) -> Any:
    """The value inside Prefect's record `record` (as `unseal` returned it: its serializer already checked)."""
    parsed = json.loads(record)
    result = parsed["result"].encode()
    if parsed["metadata"]["serializer"]["type"] == "dbnd-pickle":
        return loads_sealed_pickle(result)
    return pickle.loads(base64.decodebytes(result))


__all__ = ["CorruptRecord", "UnsealedRecord", "SERIALIZERS", "seal", "unseal", "decode", "loads_sealed_pickle"]
