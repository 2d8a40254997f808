"""The profile of a Spark DataFrame (see tracking/profiling.py for what a profile holds), computed in Spark.

Rows, nulls, approximate distinct counts, mean, std, min, max and approximate quartiles of every
column come from one aggregation job; only its one result row reaches the driver. A preview, when
asked for, collects its few rows. Automatic profiles of task inputs and outputs hold the schema
only (no Spark job: the task's own job stays the only one) unless the profile's
`[env.NAME.spark] auto_profile = "full"` or the parameter's `Data(profile=True)` asks for the stats.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbnd_prefect.tracking.profiling import ProfileOptions

_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")
_ORDERED = ("date", "timestamp", "timestamp_ntz", "string")


def is_spark_frame(value: Any) -> bool:
    """Whether `value` is a pyspark DataFrame (classic or Connect), checked by type name."""
    from dbnd_prefect.spark.fingerprint import is_spark_frame as check

    return check(value)


def profile_spark(value: Any, options: ProfileOptions) -> dict[str, Any]:
    """The profile of a Spark DataFrame, computed in Spark."""
    fields = [(field.name, field.dataType.simpleString()) for field in value.schema.fields]
    profile: dict[str, Any] = {
        "engine": "spark",
        "type": f"{type(value).__module__}.{type(value).__qualname__}",
        "columns_count": len(fields),
        "sampled": False,
        "warnings": [],
    }
    if options.with_schema:
        profile["schema"] = dict(fields)
    if options.automatic and not _full_automatic():
        profile["rows"] = None  # not counted: counting is a Spark job of its own
        profile["columns"] = {name: {"dtype": dtype} for name, dtype in fields}
        return profile
    profile.update(_aggregate(value, fields, options))
    if options.with_preview:
        table = value.limit(options.preview_rows).toArrow()
        profile["preview"] = [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]
    return profile


def _full_automatic() -> bool:
    try:
        from dbnd_prefect.spark.engine import active_settings

        return active_settings()[1].auto_profile == "full"
    except Exception:
        return False


def _aggregate(value: Any, fields: list[tuple[str, str]], options: ProfileOptions) -> dict[str, Any]:
    """rows and per-column stats from one aggregation (columns renamed to positions: names may repeat).

    SQL text rather than pyspark.sql.functions, which build classic or Connect columns by an environment
    variable, not by the frame they are used on."""
    frame = value.toDF(*[f"c{i}" for i in range(len(fields))])
    aggregates = ["count(1) AS rows"]
    for i, (_, dtype) in enumerate(fields):
        column = f"c{i}"
        aggregates.append(f"sum(CASE WHEN {column} IS NULL THEN 1 ELSE 0 END) AS n{i}")
        if not options.with_stats:
            continue
        if _kind(dtype) != "other":
            aggregates.append(f"approx_count_distinct({column}) AS d{i}")
        if _kind(dtype) == "numeric":
            aggregates += [f"avg({column}) AS mean{i}", f"stddev({column}) AS std{i}", f"min({column}) AS min{i}",
                           f"max({column}) AS max{i}",
                           f"percentile_approx({column}, array(0.25, 0.5, 0.75), 1000) AS q{i}"]
        elif _kind(dtype) == "ordered":
            aggregates += [f"min({column}) AS min{i}", f"max({column}) AS max{i}"]
    row = frame.selectExpr(*aggregates).first().asDict()
    rows = int(row["rows"])
    columns: dict[str, dict[str, Any]] = {}
    for i, (name, dtype) in enumerate(fields):
        nulls = int(row[f"n{i}"] or 0)
        info: dict[str, Any] = {"dtype": dtype, "nulls": nulls,
                                "null_fraction": round(nulls / rows, 4) if rows else 0.0}
        if f"d{i}" in row:
            info["distinct"] = int(row[f"d{i}"])
        for stat in ("mean", "std", "min", "max"):
            if f"{stat}{i}" in row and row[f"{stat}{i}"] is not None:
                info[stat] = _json_value(row[f"{stat}{i}"])
        quartiles = row.get(f"q{i}")
        if quartiles:
            info.update({"25%": _json_value(quartiles[0]), "50%": _json_value(quartiles[1]),
                         "75%": _json_value(quartiles[2])})
        key = name if name not in columns else f"{name} ({i})"
        columns[key] = info
    return {"rows": rows, "columns": columns,
            **({"approximate": "distinct counts and quartiles are approximate (HyperLogLog, percentile_approx)"}
               if options.with_stats else {})}


def _kind(dtype: str) -> str:
    if dtype in _NUMERIC or dtype.startswith("decimal"):
        return "numeric"
    if dtype in _ORDERED or dtype == "boolean":
        return "ordered"
    return "other"


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    try:
        import decimal

        if isinstance(value, decimal.Decimal):
            return float(value)
    except Exception:
        pass
    return str(value)
