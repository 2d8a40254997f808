"""Stable digests of in-memory values: the data half of a task signature.

A digest (xxh3-128, hex) depends only on a value's type and content — never on memory layout, chunking,
set or dict insertion order, or the interpreter's hash seed — so it is the same in every process running
the same library versions. Equal values may rarely get different digests (e.g. 0.0 vs -0.0); different
values never knowingly share one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import threading
import uuid
import weakref
from collections import OrderedDict
from typing import Any, Callable, Mapping

import xxhash

from dbnd_prefect import plugins
from dbnd_prefect.errors import UnfingerprintableValueError
from dbnd_prefect.fingerprint.primitives import U64 as _U64, feed_text as _text, type_name as _type_name

_CACHE_MIN_BYTES = 1 << 20
_CACHE_MAX_ENTRIES = 32


def fingerprint_value(obj: Any) -> str:
    """Hex xxh3-128 digest of `obj`'s type and content, stable across processes and hash seeds."""
    return _Walker().digest_of(obj).hex()


def clear_fingerprint_cache() -> None:
    """Forget memoized digests of large objects (call between runs, or after mutating a fingerprinted value)."""
    with _CACHE_LOCK:
        _CACHE.clear()


# --- memo cache for large array-likes: id -> (weakref or object, is_weak, digest) -------------------------
_CACHE: OrderedDict[int, tuple[Any, bool, bytes]] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _cached_digest(obj: Any, compute: Callable[[], bytes]) -> bytes:
    key = id(obj)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is not None:
            ref, weak, digest = entry
            if (ref() if weak else ref) is obj:
                _CACHE.move_to_end(key)
                return digest
    digest = compute()
    try:
        ref, weak = weakref.ref(obj), True
    except TypeError:  # bytes and other non-weakrefable values: hold the object so its id stays unique
        ref, weak = obj, False
    with _CACHE_LOCK:
        _CACHE[key] = (ref, weak, digest)
        while len(_CACHE) > _CACHE_MAX_ENTRIES:
            _CACHE.popitem(last=False)
    return digest


_KIND: dict[type, str] = {}


def _kind(t: type) -> str:
    """'pandas', 'numpy', 'arrow', 'frame:<type key>' (a plugin's frame type, such as Spark's) or 'other', by the
    first foreign library found in the type's MRO."""
    kind = _KIND.get(t)
    if kind is None:
        kind = "other"
        for klass in t.__mro__:
            root = klass.__module__.split(".", 1)[0]
            if root in ("pandas", "numpy", "pyarrow"):
                kind = "arrow" if root == "pyarrow" else root
                break
            frame_type = plugins.frame_type_of_library(root)
            if frame_type is not None:
                kind = f"frame:{frame_type.key}"
                break
        _KIND[t] = kind
    return kind


def _large_nbytes(obj: Any, kind: str) -> int:
    """Size in bytes of a memoizable array-like, or 0 for anything not worth (or not safe) to memoize."""
    if kind == "numpy":
        return int(getattr(obj, "nbytes", 0)) if hasattr(obj, "shape") and hasattr(obj, "strides") else 0
    if kind == "pandas":
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return int(obj.memory_usage(index=True, deep=False).sum())
        if isinstance(obj, pd.Series):
            return int(obj.memory_usage(index=True, deep=False))
        return int(obj.memory_usage(deep=False)) if isinstance(obj, pd.Index) else 0
    if kind == "arrow":
        return int(getattr(obj, "nbytes", 0) or 0)
    return 0


# --- the walker: feeds a value's canonical encoding into a streaming hasher ---------------------------------
# Every item starts with a one-byte tag; variable-length parts are length-prefixed, so encodings never collide.


class _Walker:
    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active: set[int] = set()  # ids of containers being walked, to cut reference cycles

    def digest_of(self, obj: Any) -> bytes:
        t = type(obj)
        kind = "other" if t in _EXACT else _kind(t)
        if (kind != "other" and _large_nbytes(obj, kind) >= _CACHE_MIN_BYTES) or (
            t is bytes and len(obj) >= _CACHE_MIN_BYTES
        ):
            return _cached_digest(obj, lambda: self._content_digest(obj))
        return self._content_digest(obj)

    def _content_digest(self, obj: Any) -> bytes:
        h = xxhash.xxh3_128()
        self.feed_content(h, obj)
        return h.digest()

    def feed(self, h: Any, obj: Any) -> None:
        t = type(obj)
        handler = _EXACT.get(t)
        if handler is not None:
            if t is bytes and len(obj) >= _CACHE_MIN_BYTES:
                h.update(b"#" + self.digest_of(obj))
            else:
                handler(self, h, obj)
            return
        kind = _kind(t)
        if kind != "other" and _large_nbytes(obj, kind) >= _CACHE_MIN_BYTES:
            h.update(b"#" + self.digest_of(obj))
        else:
            self.feed_content(h, obj, kind)

    def feed_content(self, h: Any, obj: Any, kind: str | None = None) -> None:
        t = type(obj)
        handler = _EXACT.get(t)
        if handler is not None:
            handler(self, h, obj)
            return
        if kind is None:
            kind = _kind(t)
        if kind.startswith("frame:"):  # a plugin's frame (Spark: by its plan and input files, nothing collected)
            if plugins.frame_fingerprint(kind[len("frame:"):])(self, h, obj):
                return
        elif kind != "other":
            from dbnd_prefect.fingerprint import arrays as fingerprint_arrays

            if fingerprint_arrays.feed_array_like(self, h, obj, kind):
                return
        self._feed_other(h, obj, t)

    def _feed_other(self, h: Any, obj: Any, t: type) -> None:
        if isinstance(obj, enum.Enum):
            _text(h, b"E", _type_name(t))
            self.feed(h, obj.value)
            return
        if isinstance(obj, Mapping):  # by content, as the reference does: OrderedDict(a=1) is dict(a=1)
            _EXACT[dict](self, h, obj if isinstance(obj, dict) else dict(obj.items()))
            return
        for base, handler in _SUBCLASSABLE:
            if isinstance(obj, base):
                _text(h, b"o", _type_name(t))
                handler(self, h, obj)
                return
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            names = [f.name for f in dataclasses.fields(obj)]
            self._feed_fields(h, b"D", obj, t, names, None)
        elif isinstance(getattr(t, "model_fields", None), dict) and hasattr(obj, "model_dump"):  # pydantic v2
            extra = getattr(obj, "__pydantic_extra__", None)
            self._feed_fields(h, b"P", obj, t, list(t.model_fields), extra)
        elif isinstance(obj, (dt.datetime, dt.date, dt.time)):
            _text(h, b"z", _type_name(t))
            _text(h, b"s", obj.isoformat())
        elif isinstance(obj, dt.timedelta):
            _text(h, b"z", _type_name(t))
            _text(h, b"s", f"{obj.days},{obj.seconds},{obj.microseconds}")
        elif isinstance(obj, (pathlib.PurePath, decimal.Decimal, uuid.UUID)):
            _text(h, b"p", _type_name(t))
            _text(h, b"s", str(obj))
        else:
            self._feed_pickle(h, obj, t)

    def _feed_fields(self, h: Any, tag: bytes, obj: Any, t: type, names: list[str], extra: Any) -> None:
        _text(h, tag, _type_name(t))
        h.update(_U64(len(names)))
        try:
            self._enter(obj)
        except _Cycle:
            h.update(b"<")
            return
        try:
            for name in names:
                _text(h, b"s", name)
                try:
                    self.feed(h, getattr(obj, name))
                except UnfingerprintableValueError as exc:
                    exc.path.insert(0, f".{name}")
                    raise
            self.feed(h, extra)
        finally:
            self.active.discard(id(obj))

    @staticmethod
    def _feed_pickle(h: Any, obj: Any, t: type) -> None:
        import cloudpickle

        try:
            data = cloudpickle.dumps(obj, protocol=5)  # a fixed protocol: the default changes between versions
        except Exception as exc:  # pickling raises anything from TypeError to custom errors
            raise UnfingerprintableValueError(_type_name(t), f"it is not picklable ({exc})") from exc
        _text(h, b"r", _type_name(t))
        h.update(_U64(len(data)))
        h.update(data)

    def _enter(self, obj: Any) -> None:
        if id(obj) in self.active:
            raise _Cycle
        self.active.add(id(obj))

    def feed_items(self, h: Any, tag: bytes, obj: Any) -> None:
        """An ordered container: tag, length, then each element."""
        h.update(tag + _U64(len(obj)))
        try:
            self._enter(obj)
        except _Cycle:
            h.update(b"<")
            return
        try:
            for i, item in enumerate(obj):
                try:
                    self.feed(h, item)
                except UnfingerprintableValueError as exc:
                    exc.path.insert(0, f"[{i}]")
                    raise
        finally:
            self.active.discard(id(obj))

    def feed_unordered(self, h: Any, tag: bytes, obj: Any) -> None:
        """A set or a mapping: elements (or key/value pairs) in the order of their own digests."""
        h.update(tag + _U64(len(obj)))
        try:
            self._enter(obj)
        except _Cycle:
            h.update(b"<")
            return
        try:
            if isinstance(obj, dict):
                pairs = []
                for key, value in obj.items():
                    try:
                        pairs.append((self.digest_of(key), self.digest_of(value)))
                    except UnfingerprintableValueError as exc:
                        exc.path.insert(0, f"[{key!r}]")
                        raise
                for key_digest, value_digest in sorted(pairs):
                    h.update(key_digest + value_digest)
            else:
                for digest in sorted(self.digest_of(item) for item in obj):
                    h.update(digest)
        finally:
            self.active.discard(id(obj))


class _Cycle(Exception):
    pass


def _feed_none(w: _Walker, h: Any, obj: Any) -> None:
    h.update(b"N")


def _feed_bool(w: _Walker, h: Any, obj: Any) -> None:
    h.update(b"T" if obj else b"F")


def _feed_int(w: _Walker, h: Any, obj: Any) -> None:
    _text(h, b"i", int.__repr__(obj))


def _feed_float(w: _Walker, h: Any, obj: Any) -> None:
    _text(h, b"f", float.__repr__(obj))  # repr is exact and canonical for nan/inf/-0.0


def _feed_complex(w: _Walker, h: Any, obj: Any) -> None:
    _text(h, b"c", complex.__repr__(obj))


def _feed_str(w: _Walker, h: Any, obj: Any) -> None:
    _text(h, b"s", str.__str__(obj))


def _feed_bytes(w: _Walker, h: Any, obj: Any) -> None:
    h.update(b"b" + _U64(len(obj)))
    h.update(obj)


def _feed_range(w: _Walker, h: Any, obj: Any) -> None:
    _text(h, b"g", f"{obj.start},{obj.stop},{obj.step}")


_EXACT: dict[type, Callable[[_Walker, Any, Any], None]] = {
    type(None): _feed_none,
    bool: _feed_bool,
    int: _feed_int,
    float: _feed_float,
    complex: _feed_complex,
    str: _feed_str,
    bytes: _feed_bytes,
    bytearray: _feed_bytes,
    range: _feed_range,
    list: lambda w, h, o: w.feed_items(h, b"l", o),
    tuple: lambda w, h, o: w.feed_items(h, b"t", o),
    dict: lambda w, h, o: w.feed_unordered(h, b"d", o),
    set: lambda w, h, o: w.feed_unordered(h, b"e", o),
    frozenset: lambda w, h, o: w.feed_unordered(h, b"e", o),
}

# Subclasses of builtins (namedtuple, str/int subclasses...; mappings go by content): their type name, then the builtin encoding.
# bool is absent: it cannot be subclassed.
_SUBCLASSABLE: list[tuple[type, Callable[[_Walker, Any, Any], None]]] = [
    (int, _feed_int),
    (float, _feed_float),
    (str, _feed_str),
    (bytes, _feed_bytes),
    (list, _EXACT[list]),
    (tuple, _EXACT[tuple]),
    (dict, _EXACT[dict]),
    (frozenset, _EXACT[frozenset]),
    (set, _EXACT[set]),
]
