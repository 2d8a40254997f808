"""Canonical encodings of numpy, pandas and pyarrow values, for `fingerprint_data`.

Imported only when such a value is fingerprinted. Fixed-width columns are hashed over their buffers (no
whole-column copies: at most one work buffer of `_CHUNK_BYTES` when a column is strided, has NaNs to
canonicalise or masked slots to zero); strings over Arrow offsets and data. Encodings depend on values,
not on memory layout or chunking: a RangeIndex equals the materialised index it stands for, a pandas
string column hashes alike whatever its storage, NaN payloads and masked slots are normalised.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import xxhash

from dbnd_prefect.errors import UnfingerprintableValueError
from dbnd_prefect.fingerprint.primitives import CHUNK_BYTES as _CHUNK_BYTES, U64 as _U64, feed_text as _text, type_name as _type_name

_I64 = struct.Struct("<q").pack


def feed_array_like(w: Any, h: Any, obj: Any, kind: str) -> bool:
    """Feed `obj` (from numpy, pandas or pyarrow) into `h`; False when it has no content encoding here."""
    if kind == "numpy":
        return _feed_numpy(w, h, obj)
    if kind == "pandas":
        return _feed_pandas(w, h, obj)
    return _feed_arrow_object(w, h, obj)


# --- numpy ------------------------------------------------------------------------------------------------


def _feed_numpy(w: Any, h: Any, obj: Any) -> bool:
    if isinstance(obj, np.ma.MaskedArray):
        h.update(b"a")
        feed_ndarray(w, h, np.ma.getmaskarray(obj))
        feed_ndarray(w, h, np.ma.filled(obj))
    elif isinstance(obj, np.ndarray):
        feed_ndarray(w, h, obj)
    elif isinstance(obj, np.generic):
        _text(h, b"n", _dtype_name(obj.dtype))
        feed_buffer(h, np.asarray(obj))
    else:
        return False
    return True


def _dtype_name(dtype: np.dtype) -> str:
    return repr(dtype.descr) if dtype.names else dtype.str  # .str of a structured dtype drops field names


def feed_ndarray(w: Any, h: Any, a: np.ndarray) -> None:
    """dtype, shape, then the values in C order."""
    _text(h, b"A", _dtype_name(a.dtype))
    h.update(_U64(a.ndim) + b"".join(_U64(n) for n in a.shape))
    if a.dtype.kind == "O":
        feed_objects(w, h, a.ravel(order="C"))
    else:
        feed_buffer(h, a)


def feed_buffer(h: Any, a: np.ndarray) -> None:
    """The raw bytes of a fixed-width array in C order, every NaN written as the canonical quiet NaN."""
    if a.ndim == 0:
        a = a.reshape(1)
    if a.size == 0:
        return
    floaty = a.dtype.kind in "fc"
    if not floaty and a.flags.c_contiguous:
        h.update(a.reshape(-1).view(np.uint8))
        return
    row_bytes = a.itemsize * (a.size // a.shape[0])
    rows = max(1, _CHUNK_BYTES // max(1, row_bytes))
    for start in range(0, a.shape[0], rows):
        piece = a[start : start + rows]
        if floaty and (np.isnan(piece.min()) if a.dtype.kind == "f" else np.isnan(piece).any()):
            piece = np.array(piece, order="C")
            piece[np.isnan(piece)] = np.nan
        h.update(np.ascontiguousarray(piece).reshape(-1).view(np.uint8))


def feed_objects(w: Any, h: Any, a: np.ndarray) -> None:
    """A 1-D object array: through Arrow when it converts to a flat type, else element by element."""
    import pyarrow as pa

    try:
        converted = pa.array(a, from_pandas=True)  # None, NaN and pd.NA all become null
    except Exception:  # mixed or exotic objects: ArrowInvalid, ArrowTypeError, OverflowError...
        converted = None
    if converted is not None and _family(converted.type) != "py":
        feed_arrow(w, h, converted)
        return
    h.update(b"o" + _U64(len(a)))
    for i, item in enumerate(a):
        try:
            w.feed(h, item)
        except UnfingerprintableValueError as exc:
            exc.path.insert(0, f"[{i}]")
            raise


# --- pandas -----------------------------------------------------------------------------------------------


def _feed_pandas(w: Any, h: Any, obj: Any) -> bool:
    import pandas as pd

    if isinstance(obj, pd.DataFrame):
        h.update(b"X" + _U64(obj.shape[0]) + _U64(obj.shape[1]))
        if type(obj) is not pd.DataFrame:
            _text(h, b"o", _type_name(type(obj)))
        w.feed(h, obj.columns)
        w.feed(h, obj.index)
        for i in range(obj.shape[1]):
            column = obj.iloc[:, i]
            feed_values(w, h, column.array, column.dtype)
    elif isinstance(obj, pd.Series):
        h.update(b"S")
        if type(obj) is not pd.Series:
            _text(h, b"o", _type_name(type(obj)))
        w.feed(h, obj.name)
        w.feed(h, obj.index)
        feed_values(w, h, obj.array, obj.dtype)
    elif isinstance(obj, pd.Index):
        _feed_index(w, h, obj)
    elif isinstance(obj, pd.api.extensions.ExtensionArray):
        h.update(b"E")
        feed_values(w, h, obj, obj.dtype)
    elif obj is pd.NA or obj is pd.NaT:
        _text(h, b"z", repr(obj))
    elif isinstance(obj, (pd.Timestamp, pd.Timedelta)):
        _text(h, b"z", _type_name(type(obj)))
        _text(h, b"s", obj.isoformat())
    else:
        return False  # Period, Interval, offsets...: pickled by the caller
    return True


def _feed_index(w: Any, h: Any, idx: Any) -> None:
    import pandas as pd

    h.update(b"I")
    w.feed(h, list(idx.names))
    if isinstance(idx, pd.MultiIndex):
        h.update(b"M" + _U64(idx.nlevels))
        levels = [idx.get_level_values(i) for i in range(idx.nlevels)]
    else:
        levels = [idx]
    for level in levels:
        as_range = _as_range(level)
        if as_range is None:
            feed_values(w, h, level.array, level.dtype)
        else:
            _text(h, b"V", "int64")
            h.update(b"R" + b"".join(_I64(n) for n in as_range))


def _as_range(idx: Any) -> tuple[int, int, int] | None:
    """(start, step, length) when an int64 index holds an arithmetic progression, normalised, else None."""
    import pandas as pd

    if isinstance(idx, pd.RangeIndex):
        start, step, n = idx.start, idx.step, len(idx)
    elif isinstance(idx.dtype, np.dtype) and idx.dtype == np.int64:
        a = idx.to_numpy()
        n = len(a)
        start = int(a[0]) if n else 0
        step = int(a[1]) - start if n > 1 else 1
        if n > 1 and (step == 0 or int(a[-1]) != start + step * (n - 1)):
            return None
        rows = _CHUNK_BYTES // 8
        for s in range(0, n, rows):
            e = min(n, s + rows)
            if not np.array_equal(a[s:e], np.arange(start + step * s, start + step * e, step)):
                return None
    else:
        return None
    if n == 0:
        return (0, 1, 0)
    return (start, 1, 1) if n == 1 else (start, step, n)


def feed_values(w: Any, h: Any, values: Any, dtype: Any) -> None:
    """One column's dtype and values (a numpy array or a pandas ExtensionArray)."""
    import pandas as pd

    _text(h, b"V", str(dtype))
    if isinstance(values, np.ndarray):
        _feed_plain(w, h, values)
    elif isinstance(dtype, pd.CategoricalDtype):
        w.feed(h, dtype.categories)
        h.update(b"T" if dtype.ordered else b"F")
        feed_buffer(h, np.asarray(values.codes))
    elif isinstance(values, pd.arrays.ArrowExtensionArray):
        feed_arrow(w, h, values.__arrow_array__())
    elif isinstance(getattr(values, "_mask", None), np.ndarray) and isinstance(getattr(values, "_data", None), np.ndarray):
        _feed_masked(h, values._data, values._mask)  # nullable Int/Float/boolean: slots under the mask are arbitrary
    elif isinstance(getattr(values, "_ndarray", None), np.ndarray):
        _feed_plain(w, h, values._ndarray)  # numpy-backed, datetime/timedelta/period, python-storage strings
    else:
        h.update(b"H")  # any other extension type: pandas' own stable per-row hash
        feed_buffer(h, pd.util.hash_array(values))


def _feed_plain(w: Any, h: Any, a: np.ndarray) -> None:
    if a.dtype.kind == "O":
        feed_objects(w, h, a.ravel(order="C"))
    else:
        feed_buffer(h, a)


def _feed_masked(h: Any, data: np.ndarray, mask: np.ndarray) -> None:
    if not mask.any():
        h.update(b"-")
        feed_buffer(h, data)
        return
    h.update(b"m")
    feed_buffer(h, mask)
    rows = max(1, _CHUNK_BYTES // data.itemsize)
    for s in range(0, len(data), rows):
        piece = data[s : s + rows].copy()
        piece[mask[s : s + rows]] = 0
        feed_buffer(h, piece)


# --- pyarrow ----------------------------------------------------------------------------------------------


def _feed_arrow_object(w: Any, h: Any, obj: Any) -> bool:
    import pyarrow as pa

    if isinstance(obj, (pa.Array, pa.ChunkedArray)):
        h.update(b"W")
        feed_arrow(w, h, obj)
    elif isinstance(obj, (pa.Table, pa.RecordBatch)):
        h.update(b"Y")
        w.feed(h, list(obj.schema.names))
        for column in obj.columns:
            feed_arrow(w, h, column)
    else:
        return False
    return True


def _is_view(t: Any, kind: str) -> bool:
    import pyarrow as pa

    check = getattr(pa.types, f"is_{kind}_view", None)  # view types exist from pyarrow 16 on
    return bool(check and check(t))


def _family(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_view(t, "string"):
        return "utf8"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or _is_view(t, "binary"):
        return "binary"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "prim"
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        return "prim"
    return "py"


def feed_arrow(w: Any, h: Any, arr: Any) -> None:
    """An Arrow Array or ChunkedArray: family and type, length, null mask, then values — chunking-independent."""
    import pyarrow as pa

    chunks = list(arr.chunks) if isinstance(arr, pa.ChunkedArray) else [arr]
    t = arr.type
    if pa.types.is_dictionary(t):
        chunks = [c.dictionary_decode() for c in chunks]
        t = t.value_type
    family = _family(t)
    _text(h, b"W", family if family in ("utf8", "binary") else f"{family}:{t}")
    h.update(_U64(sum(len(c) for c in chunks)))
    if family == "py":
        for c in chunks:
            for item in c.to_pylist():
                w.feed(h, item)
        return
    if any(c.null_count for c in chunks):
        mask_hash = xxhash.xxh3_128()
        for c in chunks:
            mask_hash.update(c.is_null().to_numpy(zero_copy_only=False).view(np.uint8))
        h.update(b"m" + mask_hash.digest())
    else:
        h.update(b"-")
    if family in ("utf8", "binary"):
        _feed_arrow_strings(h, chunks, family)
    elif family == "bool":
        for c in chunks:
            feed_buffer(h, c.fill_null(False).to_numpy(zero_copy_only=False))
    else:
        for c in chunks:
            feed_buffer(h, _arrow_numbers(c))


def _arrow_numbers(c: Any) -> np.ndarray:
    import pyarrow as pa

    t = c.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):  # temporal: its integer representation
        c = c.view(pa.int32() if t.bit_width == 32 else pa.int64())
    if c.null_count:
        c = c.fill_null(0)
    if len(c) == 0:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(c.buffers()[1], dtype=c.type.to_pandas_dtype())[c.offset : c.offset + len(c)]


def _feed_arrow_strings(h: Any, chunks: list[Any], family: str) -> None:
    import pyarrow as pa

    large = pa.large_string() if family == "utf8" else pa.large_binary()
    lengths, data = xxhash.xxh3_128(), xxhash.xxh3_128()
    step = _CHUNK_BYTES // 8
    for c in chunks:
        if len(c) == 0:
            continue
        if _is_view(c.type, "string") or _is_view(c.type, "binary"):
            c = c.cast(large)
        if c.null_count:
            c = c.fill_null("" if family == "utf8" else b"")  # bytes under null slots are unspecified
        buffers = c.buffers()
        offset_type = np.int64 if c.type == large else np.int32
        offsets = np.frombuffer(buffers[1], dtype=offset_type)[c.offset : c.offset + len(c) + 1]
        for s in range(0, len(offsets) - 1, step):
            lengths.update(np.diff(offsets[s : s + step + 1]).astype("<i8", copy=False))
        begin, end = int(offsets[0]), int(offsets[-1])
        if end > begin:
            data.update(memoryview(buffers[2])[begin:end])
    h.update(lengths.digest() + data.digest())
