"""What differs between two DataFrames, column by column: schema, rows, statistics, and rows by key.

A parquet file is read through pyarrow one column at a time (the key columns first, with `--key`), so two
large frames are compared without loading either whole; other frames are compared as Arrow tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dbnd_prefect.errors import ParameterError

SAMPLE = 5
_HIDDEN = "__index_level_"


class ArrowFrame:
    """A frame as Arrow columns: a parquet file read lazily (`source` a file object), or a table."""

    def __init__(self, table: Any = None, source: Any = None) -> None:
        import pyarrow.parquet as pq

        self._table, self._file = table, (pq.ParquetFile(source) if source is not None else None)

    @classmethod
    def of(cls, value: Any) -> ArrowFrame:
        import pyarrow as pa

        return cls(table=value if isinstance(value, pa.Table) else pa.Table.from_pandas(value, preserve_index=False))

    @property
    def schema(self) -> dict[str, str]:
        schema = self._file.schema_arrow if self._file is not None else self._table.schema
        return {f.name: str(f.type) for f in schema if not f.name.startswith(_HIDDEN)}

    @property
    def num_rows(self) -> int:
        return self._file.metadata.num_rows if self._file is not None else self._table.num_rows

    def columns(self, names: Sequence[str]) -> Any:
        return self._file.read(columns=list(names)) if self._file is not None else self._table.select(list(names))

    def column(self, name: str) -> Any:
        return self.columns([name]).column(0).combine_chunks()

    def rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The rows at `indices` (reading only the row groups that hold them)."""
        import pyarrow as pa

        names = list(self.schema)
        if self._file is None:
            return self._table.select(names).take(pa.array(indices, pa.int64())).to_pylist()
        meta, found, start = self._file.metadata, {}, 0
        for group in range(meta.num_row_groups):
            end = start + meta.row_group(group).num_rows
            inside = [i for i in indices if start <= i < end]
            if inside:
                table = self._file.read_row_group(group, columns=names)
                for i, row in zip(inside, table.take(pa.array([i - start for i in inside])).to_pylist()):
                    found[i] = row
            start = end
        return [found[i] for i in indices]


def column_stats(array: Any) -> dict[str, Any]:
    """count (non-null), nulls, and mean/min/max of a numeric column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stats: dict[str, Any] = {"count": len(array) - array.null_count, "nulls": array.null_count}
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        low_high = pc.min_max(array).as_py()
        mean = pc.mean(array).as_py()
        stats.update(mean=_clean(mean), min=_clean(low_high["min"]), max=_clean(low_high["max"]))
    return stats


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return float(value) if value is not None and not isinstance(value, (int, float)) else value


def _differs(a: Any, b: Any) -> Any:
    """A boolean mask: the values differ (nulls equal nulls, NaN equals NaN)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if a.type != b.type:
        try:
            b = b.cast(a.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            a, b = a.cast(pa.string()), b.cast(pa.string())
    mask = pc.fill_null(pc.not_equal(a, b), False)
    mask = pc.or_(mask, pc.xor(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(a.type):
        mask = pc.and_(mask, pc.invert(pc.and_(pc.fill_null(pc.is_nan(a), False), pc.fill_null(pc.is_nan(b), False))))
    return mask


def compare_frames(a: ArrowFrame, b: ArrowFrame, key: Sequence[str] = (), sample: int = SAMPLE) -> dict[str, Any]:
    """schema {added, removed, changed}, rows {a, b}, types {a, b}, columns {name: {a: stats, b: stats}} and, given `key`,
    keyed {added, removed, changed (counts), key, columns (changed per column), samples}."""
    schema_a, schema_b = a.schema, b.schema
    common = [c for c in schema_a if c in schema_b]
    result: dict[str, Any] = {
        "schema": {"added": {c: t for c, t in schema_b.items() if c not in schema_a},
                   "removed": {c: t for c, t in schema_a.items() if c not in schema_b},
                   "changed": {c: [schema_a[c], schema_b[c]] for c in common if schema_a[c] != schema_b[c]}},
        "rows": {"a": a.num_rows, "b": b.num_rows},
        "types": {"a": schema_a, "b": schema_b},
    }
    keyed = _match_keys(a, b, list(key), schema_a, schema_b) if key else None
    columns: dict[str, Any] = {}
    changed_by_column: dict[str, int] = {}
    changed_mask = None
    for name in [*schema_a, *(c for c in schema_b if c not in schema_a)]:
        col_a = a.column(name) if name in schema_a else None
        col_b = b.column(name) if name in schema_b else None
        columns[name] = {"a": column_stats(col_a) if col_a is not None else None,
                         "b": column_stats(col_b) if col_b is not None else None}
        if keyed is not None and col_a is not None and col_b is not None and name not in key:
            mask = _differs(col_a.take(keyed["index_a"]), col_b.take(keyed["index_b"]))
            count = mask.true_count
            if count:
                import pyarrow.compute as pc

                changed_by_column[name] = count
                changed_mask = mask if changed_mask is None else pc.or_(changed_mask, mask)
        del col_a, col_b
    result["columns"] = columns
    if keyed is not None:
        result["keyed"] = _keyed_summary(a, b, list(key), keyed, changed_mask, changed_by_column, sample)
    return result


def _match_keys(a: ArrowFrame, b: ArrowFrame, key: list[str], schema_a: dict[str, str],
                schema_b: dict[str, str]) -> dict[str, Any]:
    """Rows of A and B paired by key: indices of matched pairs, and of rows only in A or only in B."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    for side, schema in (("A", schema_a), ("B", schema_b)):
        missing = [k for k in key if k not in schema]
        if missing:
            raise ParameterError(f"--key: column '{missing[0]}' is not in {side}",
                                 hint=f"{side} has columns {', '.join(schema) or 'none'}")
    keys_a, keys_b = a.columns(key), b.columns(key)
    if keys_a.schema.types != keys_b.schema.types:
        try:
            keys_b = keys_b.cast(keys_a.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ParameterError(f"--key {','.join(key)}: the key columns' types differ between A and B "
                                 f"({keys_a.schema.types} vs {keys_b.schema.types})",
                                 hint="pick key columns of one type in both") from None
    fast = _sorted_match(keys_a.column(0), keys_b.column(0), key) if len(key) == 1 else None
    if fast is not None:
        return fast
    for side, table in (("A", keys_a), ("B", keys_b)):
        _check_unique(side, key, table.num_rows - table.group_by(key).aggregate([]).num_rows)
    keys_a = keys_a.append_column("__dbnd_a", pa.array(np.arange(keys_a.num_rows, dtype=np.int64)))
    keys_b = keys_b.append_column("__dbnd_b", pa.array(np.arange(keys_b.num_rows, dtype=np.int64)))
    joined = keys_a.join(keys_b, keys=key, join_type="full outer", use_threads=True)
    index_a, index_b = joined.column("__dbnd_a").combine_chunks(), joined.column("__dbnd_b").combine_chunks()
    both = pc.and_(pc.is_valid(index_a), pc.is_valid(index_b))
    only_a = pc.drop_null(pc.filter(index_a, pc.is_null(index_b)))
    only_b = pc.drop_null(pc.filter(index_b, pc.is_null(index_a)))
    matched_a, matched_b = pc.filter(index_a, both), pc.filter(index_b, both)
    order = pc.sort_indices(matched_a)  # pairs in A's row order: reading and samples follow the file
    return {"index_a": matched_a.take(order), "index_b": matched_b.take(order),
            "only_a": only_a.take(pc.sort_indices(only_a)),
            "only_b": only_b.take(pc.sort_indices(only_b))}


def _check_unique(side: str, key: list[str], duplicates: int) -> None:
    if duplicates:
        raise ParameterError(f"--key {','.join(key)}: not unique in {side} ({duplicates} duplicate row(s))",
                             hint="add columns to the key until it identifies each row")


def _sorted(side: str, key: list[str], values: Any) -> tuple[Any, Any]:
    """(order, sorted values) of a key column; no sort for a key already in increasing order (a common case)."""
    import numpy as np

    if len(values) < 2 or bool(np.all(values[1:] > values[:-1])):
        return np.arange(len(values), dtype=np.int64), values
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    _check_unique(side, key, int(np.count_nonzero(ordered[1:] == ordered[:-1])))
    return order, ordered


def _sorted_match(col_a: Any, col_b: Any, key: list[str]) -> dict[str, Any] | None:
    """One integer or temporal key without nulls: pair the rows by sorting both sides (numpy), several times
    faster than a hash join on large frames; None for other keys."""
    import numpy as np
    import pyarrow as pa

    kind = col_a.type
    if not (pa.types.is_integer(kind) or pa.types.is_temporal(kind)) or col_a.null_count or col_b.null_count:
        return None
    values_a = np.asarray(col_a.combine_chunks().to_numpy(zero_copy_only=False)).view(np.int64) \
        if not pa.types.is_integer(kind) else col_a.combine_chunks().to_numpy()
    values_b = np.asarray(col_b.combine_chunks().to_numpy(zero_copy_only=False)).view(np.int64) \
        if not pa.types.is_integer(kind) else col_b.combine_chunks().to_numpy()
    order_a, sorted_a = _sorted("A", key, values_a)
    order_b, sorted_b = _sorted("B", key, values_b)
    position = np.searchsorted(sorted_b, sorted_a)
    inside = position < len(sorted_b)
    found = np.zeros(len(sorted_a), dtype=bool)
    found[inside] = sorted_b[position[inside]] == sorted_a[inside]
    in_b = np.zeros(len(values_a), dtype=bool)  # by row of A, so pairs and samples follow A's order
    in_b[order_a[found]] = True
    partner = np.zeros(len(values_a), dtype=np.int64)
    partner[order_a[found]] = order_b[position[found]]
    index_a = np.flatnonzero(in_b)
    index_b = partner[index_a]
    matched_b = np.zeros(len(values_b), dtype=bool)
    matched_b[index_b] = True
    return {"index_a": pa.array(index_a), "index_b": pa.array(index_b),
            "only_a": pa.array(np.flatnonzero(~in_b)), "only_b": pa.array(np.flatnonzero(~matched_b))}


def _keyed_summary(a: ArrowFrame, b: ArrowFrame, key: list[str], keyed: dict[str, Any], changed_mask: Any,
                   changed_by_column: dict[str, int], sample: int) -> dict[str, Any]:
    import pyarrow.compute as pc

    removed = keyed["only_a"].to_pylist()[:sample]
    added = keyed["only_b"].to_pylist()[:sample]
    changed_count = changed_mask.true_count if changed_mask is not None else 0
    pairs: list[tuple[int, int]] = []
    if changed_count:
        positions = pc.indices_nonzero(changed_mask).slice(0, sample).to_pylist()
        pairs = [(keyed["index_a"][p].as_py(), keyed["index_b"][p].as_py()) for p in positions]
    rows_a = a.rows([p[0] for p in pairs]) if pairs else []
    rows_b = b.rows([p[1] for p in pairs]) if pairs else []
    changed = []
    for row_a, row_b in zip(rows_a, rows_b):
        values = {c: [row_a[c], row_b[c]] for c in row_a if c in row_b and c not in key and not _same(row_a[c], row_b[c])}
        changed.append({"key": {k: row_a[k] for k in key}, "values": values})
    return {
        "key": key, "added": len(keyed["only_b"]), "removed": len(keyed["only_a"]), "changed": changed_count,
        "unchanged": len(keyed["index_a"]) - changed_count, "columns": changed_by_column,
        "samples": {"added": b.rows(added), "removed": a.rows(removed), "changed": changed},
    }


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


def stats_differ(columns: dict[str, Any]) -> list[str]:
    """The columns whose statistics differ between A and B."""
    return [name for name, sides in columns.items() if sides["a"] != sides["b"]]
