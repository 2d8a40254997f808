"""A data profile as markdown for a Prefect artifact: a heading line, one table row per column."""

from __future__ import annotations

from typing import Any

_BARS = " ▁▂▃▄▅▆▇█"
_STATS = ("mean", "std", "min", "25%", "50%", "75%", "max")


def profile_markdown(title: str, profile: dict[str, Any]) -> str:
    """Markdown showing `profile` (see tracking/profiling.py) under `title`."""
    rows, columns = profile.get("rows", 0), profile.get("columns", {})
    counted = "rows not counted" if rows is None else f"{rows:,} rows"  # a Spark schema-only profile
    size = f", {human_bytes(profile['bytes'])}" if profile.get("bytes") is not None else ""
    head = f"### {title}: {counted} × {profile.get('columns_count', len(columns))} columns{size}"
    lines = [head, ""]
    if profile.get("uri"):
        lines += [f"`{profile['uri']}`", ""]
    if profile.get("sampled"):
        lines += [f"Distinct counts, quartiles, top values and histograms from a random sample of "
                  f"{profile['sample_rows']:,} rows; rows, nulls, mean, std, min and max from all rows.", ""]
    contract = profile.get("contract")
    if contract:
        verdict = "passed" if not contract.get("failed") else "**FAILED**"
        lines += [f"Data contract `{contract.get('schema')}` {verdict}: {contract.get('passed', 0)} check(s) passed, "
                  f"{contract.get('failed', 0)} failed.", ""]
        for failure in contract.get("failures", [])[:10]:
            lines.append(f"- column `{failure.get('column')}`: {_cell(failure.get('check'))} "
                         f"({failure.get('cases', 0)} case(s), e.g. {_cell(failure.get('examples'))})")
        if contract.get("failures"):
            lines.append("")
    schema = profile.get("schema", {})
    if columns:
        with_stats = any(any(s in c for s in _STATS) for c in columns.values())
        with_top = any("top" in c for c in columns.values())
        with_hist = any("histogram" in c for c in columns.values())
        header = ["column", "dtype", "nulls", "distinct"]
        header += list(_STATS) if with_stats else []
        header += ["top values"] if with_top else []
        header += ["histogram"] if with_hist else []
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, col in columns.items():
            cells = [_cell(name), schema.get(name, col.get("dtype", "")), str(col.get("nulls", "")),
                     _fmt(col.get("distinct"))]
            if with_stats:
                cells += [_fmt(col.get(s)) for s in _STATS]
            if with_top:
                cells.append(", ".join(f"{_cell(t['value'])} ({t['count']:,})" for t in col.get("top", [])))
            if with_hist:
                cells.append(_histogram_cell(col.get("histogram")))
            lines.append("| " + " | ".join(cells) + " |")
    for warning in profile.get("warnings", []):
        lines += ["", f"> ⚠ {warning}"]
    preview = profile.get("preview")
    if preview:
        names = list(preview[0])
        lines += ["", f"First {len(preview)} rows:", "", "| " + " | ".join(_cell(n) for n in names) + " |",
                  "|" + "---|" * len(names)]
        lines += ["| " + " | ".join(_cell(r.get(n)) for n in names) + " |" for r in preview]
    return "\n".join(lines)


def human_bytes(count: float) -> str:
    """`count` bytes as B, KiB, MiB or GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def _histogram_cell(histogram: dict[str, Any] | None) -> str:
    if not histogram or not histogram.get("counts"):
        return ""
    counts = histogram["counts"]
    if histogram.get("kind") == "categorical":
        return ", ".join(f"{_cell(v)}: {c:,}" for v, c in zip(histogram["values"], counts))
    top = max(counts) or 1
    bars = "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in counts)
    edges = histogram["edges"]
    return f"{_fmt(edges[0])} `{bars}` {_fmt(edges[-1])}"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return _cell(value)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")
