"""The fingerprint of an in-memory Spark DataFrame, without collecting it: its query plan and its input files.

Two DataFrames built by the same query over the same stored data get the same fingerprint in any
process or session: the analyzed logical plan's text with Spark's expression ids (`#123`) removed, plus
the listing (size and modification time, or the store's version) of every file the plan reads. Data
that lives only inside a plan (a Spark Connect frame made from local rows) is hashed from the client's
copy; rows that only Spark holds (a classic frame made from Python objects, an RDD, a JDBC table) are
digested by one aggregation computed in Spark (a count and a sum of row hashes come back, no rows).
"""

from __future__ import annotations

import re
from typing import Any

from dbnd_prefect.errors import UnfingerprintableValueError

_EXPRESSION_ID = re.compile(r"#\d+")
_PLAN_ID = re.compile(r"plan_id=\d+")
# leaves whose rows are not in the plan's text nor in files Spark can list
_OPAQUE_LEAVES = ("LogicalRDD", "ExternalRDD", "LocalRelation", "JDBCRelation", "StreamingRelation",
                  "StreamingExecutionRelation")


def is_spark_frame(value: Any) -> bool:
    """Whether `value` is a pyspark DataFrame (classic or Connect), by its class (pyspark not imported)."""
    return any(cls.__module__.startswith("pyspark.sql") and cls.__name__ == "DataFrame"
               for cls in type(value).__mro__)


def feed_spark(walker: Any, h: Any, value: Any) -> bool:
    """Feed a Spark DataFrame's fingerprint into hasher `h`; False for other pyspark objects."""
    from dbnd_prefect.fingerprint.primitives import feed_text

    if not is_spark_frame(value):
        return False
    feed_text(h, b"S", "pyspark.DataFrame")
    feed_text(h, b"s", plan_fingerprint(value))
    return True


def plan_fingerprint(value: Any) -> str:
    """`plan:<plan digest>:inputs:<listing digest>[:rows:<content digest>]` of a Spark DataFrame."""
    from dbnd_prefect.targets.atomic import new_hasher

    try:
        plan = normalized_plan(value)
    except Exception as exc:
        raise UnfingerprintableValueError("pyspark.DataFrame", f"Spark cannot analyze its plan ({_first(exc)})") \
            from None
    parts = [f"plan:{_digest(plan)}"]
    try:
        files = sorted(value.inputFiles())
    except Exception as exc:
        raise UnfingerprintableValueError("pyspark.DataFrame", f"Spark cannot list its input files "
                                                               f"({_first(exc)})") from None
    listing = new_hasher()
    for uri in files:
        listing.update(f"{uri}\0{_file_stamp(uri)}\n".encode())
    parts.append(f"inputs:{len(files)}:{listing.hexdigest()}")
    opaque = [leaf for leaf in _OPAQUE_LEAVES if re.search(rf"\b{leaf}\b", plan)]
    if opaque:
        local = _connect_local_data(value)
        if local is not None and opaque == ["LocalRelation"]:
            parts.append(f"local:{local}")
        else:
            parts.append(f"rows:{content_digest(value)}")
    return ":".join(parts)


def normalized_plan(value: Any) -> str:
    """The analyzed logical plan as text, with expression and plan ids removed (they differ per session)."""
    jdf = getattr(value, "_jdf", None)
    if jdf is not None:  # classic
        text = jdf.queryExecution().analyzed().toString()
    else:  # Spark Connect: one analyze request
        explained = value._explain_string(extended=True)
        start = explained.find("== Analyzed Logical Plan ==")
        end = explained.find("== Optimized Logical Plan ==")
        text = explained[start:end] if start >= 0 else explained
    return _PLAN_ID.sub("plan_id=", _EXPRESSION_ID.sub("#", text)).strip()


def _file_stamp(uri: str) -> str:
    from dbnd_prefect.errors import DbndError
    from dbnd_prefect.targets.target import Target

    try:
        return Target(uri).fingerprint()
    except DbndError:
        return "unavailable"


def _connect_local_data(value: Any) -> str | None:
    """A digest of the rows a Spark Connect plan carries from the client (LocalRelation), or None (classic)."""
    plan = getattr(value, "_plan", None)
    if plan is None or getattr(value, "_jdf", None) is not None:
        return None
    from dbnd_prefect.fingerprint.data import fingerprint_value
    from dbnd_prefect.targets.atomic import new_hasher

    from pyspark.sql.connect.plan import LogicalPlan

    hasher = new_hasher()
    found = False
    stack, seen = [plan], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        kind = type(node).__name__
        if kind == "LocalRelation":
            table = getattr(node, "_table", None)
            hasher.update(b"L" + (fingerprint_value(table).encode() if table is not None else b"-"))
            hasher.update(str(getattr(node, "_schema", "")).encode())
            found = True
        elif kind == "ChunkedCachedLocalRelation":  # large local data, uploaded once under its content hashes
            hasher.update(b"C" + ",".join(getattr(node, "_data_hashes", [])).encode())
            found = True
        for attribute in vars(node).values():  # children: _child, left, right, other, references...
            items = attribute if isinstance(attribute, (list, tuple)) else [attribute]
            stack.extend(item for item in items if isinstance(item, LogicalPlan))
    return hasher.hexdigest() if found else None


def content_digest(value: Any) -> str:
    """`count:sum` of per-row xxhash64 values, computed by one Spark aggregation (no rows collected)."""
    try:  # SQL text, not pyspark.sql.functions: they build classic or Connect columns by an environment variable
        renamed = value.toDF(*[f"c{i}" for i in range(len(value.columns))])
        hashed = renamed.selectExpr(f"xxhash64({', '.join(renamed.columns)}) AS h")
        row = hashed.selectExpr("count(1) AS n", "sum(cast(h AS decimal(38,0))) AS s").first()
    except Exception as exc:
        raise UnfingerprintableValueError("pyspark.DataFrame", f"its rows cannot be hashed in Spark "
                                                               f"({_first(exc)})") from None
    return f"{row['n']}:{row['s']}"


def _digest(text: str) -> str:
    from dbnd_prefect.targets.atomic import new_hasher

    hasher = new_hasher()
    hasher.update(text.encode())
    return hasher.hexdigest()


def _first(exc: BaseException) -> str:
    from dbnd_prefect.redaction import one_line

    return one_line(str(exc).split("\n", 1)[0], 200)
