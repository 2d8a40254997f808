"""The profile of a pandas DataFrame or Series (see profiling.py for what a profile holds).

Cheap whole-column reductions (rows, nulls, mean, std, min, max) use every row; what needs hashing
or sorting (distinct counts, quartiles, top values, histograms) uses a random sample of
`sample_rows` rows when the frame is larger. Columns of mixed types or unhashable values (lists,
dicts) are profiled on their text and noted in `warnings`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from dbnd_prefect.tracking.profiling import ProfileOptions

_TEXT_LIMIT = 80


def profile_pandas(value: Any, options: "ProfileOptions") -> dict[str, Any]:
    """The profile of a DataFrame (a Series is profiled as a one-column frame)."""
    import numpy as np
    import pandas as pd

    frame = value.to_frame() if isinstance(value, pd.Series) else value
    rows = int(len(frame))
    sample_index = None
    if rows > options.sample_rows:
        # stratified: one random row from each of `sample_rows` equal slices (sorted, no shuffle of all rows)
        starts = (np.arange(options.sample_rows, dtype=np.int64) * rows) // options.sample_rows
        sizes = np.diff(np.append(starts, rows))
        sample_index = starts + (np.random.default_rng(0).random(options.sample_rows) * sizes).astype(np.int64)
    profile: dict[str, Any] = {
        "engine": "pandas",
        "type": f"pandas.{type(value).__name__}",
        "rows": rows,
        "columns_count": int(frame.shape[1]),
        "bytes": int(frame.memory_usage(index=True, deep=False).sum()),
        "sampled": sample_index is not None,
        "sample_rows": int(len(sample_index)) if sample_index is not None else rows,
        "warnings": [],
    }
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        profile["warnings"].append("duplicate column names: columns are listed by position")
    if options.with_schema:
        profile["schema"] = {name: str(dtype) for name, dtype in zip(names, frame.dtypes)}
    columns: dict[str, dict[str, Any]] = {}
    for position, name in enumerate(names):
        column = frame.iloc[:, position]
        key = name if name not in columns else f"{name} ({position})"
        columns[key] = _profile_column(key, column, sample_index, options, profile["warnings"])
    profile["bytes"] += sum(c.pop("_extra_bytes", 0) for c in columns.values())
    profile["columns"] = columns
    if options.with_preview:
        profile["preview"] = [
            {name: _json_value(v) for name, v in zip(names, row)}
            for row in frame.head(options.preview_rows).itertuples(index=False, name=None)
        ]
    return profile


def _profile_column(name: str, column: "pd.Series", sample_index: Any, options: "ProfileOptions",
                    warnings: list[str]) -> dict[str, Any]:
    import numpy as np
    from pandas.api import types

    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iuf":
        return _profile_numbers(column, sample_index, options)
    rows = len(column)
    nulls = _null_count(column)
    info: dict[str, Any] = {"dtype": str(column.dtype), "nulls": nulls,
                            "null_fraction": round(nulls / rows, 4) if rows else 0.0}
    sample = column if sample_index is None else column.take(sample_index)
    if types.is_object_dtype(column.dtype):
        info["_extra_bytes"] = _object_bytes(column, sample)
    is_numeric = types.is_numeric_dtype(column.dtype) and not types.is_bool_dtype(column.dtype)
    is_time = types.is_datetime64_any_dtype(column.dtype) or types.is_timedelta64_dtype(column.dtype)

    hashable = sample
    if types.is_object_dtype(column.dtype):
        hashable = _hashable_values(name, sample, warnings)
    if options.with_stats:
        try:
            info["distinct"] = int(hashable.nunique(dropna=True))
        except TypeError:
            pass
        if is_numeric:
            info.update(_numeric_stats(column, sample))
        elif is_time:
            non_null = column.dropna()
            if len(non_null):
                info["min"], info["max"] = str(non_null.min()), str(non_null.max())
        else:
            info["top"] = _top_values(hashable, options.top_values)
    if options.with_histograms and not is_time:
        info["histogram"] = (_numeric_histogram(sample, options.histogram_bins) if is_numeric
                             else _category_histogram(hashable, options.top_values))
    return info


def _profile_numbers(column: "pd.Series", sample_index: Any, options: "ProfileOptions") -> dict[str, Any]:
    """The profile of a plain numpy numeric column: whole-column reductions once each, one sort of the sample."""
    import numpy as np

    values = column.to_numpy()
    missing = np.isnan(values) if values.dtype.kind == "f" else None
    nulls = int(np.count_nonzero(missing)) if missing is not None else 0
    present = values[~missing] if nulls else values
    rows = len(values)
    info: dict[str, Any] = {"dtype": str(column.dtype), "nulls": nulls,
                            "null_fraction": round(nulls / rows, 4) if rows else 0.0}
    sample = values if sample_index is None else values[sample_index]
    if nulls:
        sample = sample[~np.isnan(sample)]
    ordered = np.sort(sample)
    if options.with_stats:
        info["distinct"] = int(np.count_nonzero(ordered[1:] != ordered[:-1]) + 1) if len(ordered) else 0
        if len(present):
            info["mean"] = _number(present.mean(dtype="float64"))
            info["std"] = _number(present.std(dtype="float64", ddof=1)) if len(present) > 1 else None
            info["min"], info["max"] = _number(present.min()), _number(present.max())
        if len(ordered):
            for label, q in (("25%", 0.25), ("50%", 0.5), ("75%", 0.75)):
                position = q * (len(ordered) - 1)
                low, high = int(np.floor(position)), int(np.ceil(position))
                below = float(ordered[low])
                info[label] = _number(below + (float(ordered[high]) - below) * (position - low))
    if options.with_histograms:
        finite = ordered[np.isfinite(ordered)] if ordered.dtype.kind == "f" else ordered
        if len(finite):
            counts, edges = np.histogram(finite, bins=options.histogram_bins)
            info["histogram"] = {"kind": "numeric", "edges": [_number(e) for e in edges],
                                 "counts": [int(c) for c in counts]}
        else:
            info["histogram"] = {"kind": "numeric", "edges": [], "counts": []}
    return info


def _null_count(column: "pd.Series") -> int:
    import numpy as np

    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iub":
        return 0  # numpy integers and booleans hold no missing values
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
        return int(np.count_nonzero(np.isnan(column.to_numpy())))
    return int(column.isna().sum())


def _hashable_values(name: str, sample: "pd.Series", warnings: list[str]) -> "pd.Series":
    """`sample` itself, or its values as text when they mix types or cannot be hashed."""
    kinds = sample.dropna().map(type).value_counts()
    text = False
    if len(kinds) > 1:
        shown = ", ".join(k.__name__ for k in kinds.index[:4])
        warnings.append(f"column '{name}' mixes types ({shown}): distinct and top values are counted on their text")
        text = True
    try:
        sample.nunique(dropna=True)
    except TypeError:
        kind = kinds.index[0].__name__ if len(kinds) else "object"
        warnings.append(f"column '{name}' holds unhashable values ({kind}): distinct and top values are counted "
                        "on their text")
        text = True
    if not text:
        return sample
    return sample.map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v))


def _numeric_stats(column: "pd.Series", sample: "pd.Series") -> dict[str, Any]:
    import numpy as np

    stats: dict[str, Any] = {}
    if isinstance(column.dtype, np.dtype):  # plain numpy: one pass per statistic, no per-call null masks
        values = column.to_numpy()
        if values.dtype.kind == "f":
            finite = values[~np.isnan(values)] if np.isnan(values.min()) else values
        else:
            finite = values
        if len(finite):
            stats["mean"] = _number(finite.mean(dtype="float64"))
            stats["std"] = _number(finite.std(dtype="float64", ddof=1)) if len(finite) > 1 else None
            stats["min"], stats["max"] = _number(finite.min()), _number(finite.max())
    else:
        for stat in ("mean", "std", "min", "max"):
            try:
                stats[stat] = _number(getattr(column, stat)())
            except (TypeError, ValueError):
                stats[stat] = None
    try:
        q = sample.quantile([0.25, 0.5, 0.75])
        stats["25%"], stats["50%"], stats["75%"] = (_number(v) for v in q.tolist())
    except (TypeError, ValueError):
        pass
    return stats


def _top_values(values: "pd.Series", n: int) -> list[dict[str, Any]]:
    try:
        counts = values.value_counts(dropna=True).head(n)
    except TypeError:
        return []
    return [{"value": _json_value(v), "count": int(c)} for v, c in counts.items()]


def _numeric_histogram(sample: "pd.Series", bins: int) -> dict[str, Any]:
    import numpy as np

    values = sample.to_numpy(dtype="float64", na_value=np.nan)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"kind": "numeric", "edges": [], "counts": []}
    counts, edges = np.histogram(values, bins=bins)
    return {"kind": "numeric", "edges": [_number(e) for e in edges], "counts": [int(c) for c in counts]}


def _category_histogram(values: "pd.Series", n: int) -> dict[str, Any]:
    try:
        counts = values.value_counts(dropna=True)
    except TypeError:
        return {"kind": "categorical", "values": [], "counts": []}
    top = counts.head(n)
    labels, numbers = [_json_value(v) for v in top.index], [int(c) for c in top]
    others = int(counts.iloc[n:].sum())
    if others:
        labels.append("others")
        numbers.append(others)
    return {"kind": "categorical", "values": labels, "counts": numbers}


def _object_bytes(column: "pd.Series", sample: "pd.Series") -> int:
    """Bytes held by the Python objects of an object column (measured on the sample, scaled)."""
    if not len(sample):
        return 0
    deep = int(sample.memory_usage(index=False, deep=True)) - int(sample.memory_usage(index=False, deep=False))
    return int(deep * len(column) / len(sample))


def _number(value: Any) -> float | int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _json_value(value: Any) -> Any:
    """`value` as JSON can hold it: numbers and booleans as they are, None for missing, else short text."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) or type(value).__module__ == "numpy":
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value if not isinstance(value, float) or math.isfinite(value) else None
    try:
        import pandas as pd

        if value is pd.NaT or (not isinstance(value, (list, dict, tuple, set)) and pd.isna(value)):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value)
    return text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT - 3] + "..."
