"""The benchmark table: rows of (measure, raw, dbnd, ratio, target, met?) and the machine they ran on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Row:
    """One measure. `ratio` is dbnd / raw; `met` is None for context rows (no target)."""

    key: str
    measure: str
    raw: float | None
    dbnd: float | None
    unit: str
    target: str = "—"
    check: Callable[["Row"], bool] | None = None
    raw_note: str = ""
    dbnd_note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.raw is None or self.dbnd is None or self.raw == 0:
            return None
        return self.dbnd / self.raw

    @property
    def met(self) -> bool | None:
        if self.check is None or self.ratio is None:
            return None
        return bool(self.check(self))


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, unit: str = "") -> str:
    """3 significant digits, with the unit."""
    if value is None:
        return "error"
    if value == 0:
        text = "0"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| measure | raw Prefect | dbnd_prefect | ratio | target | met? |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for row in rows:
        raw = fmt(row.raw, row.unit) + (f" ({row.raw_note})" if row.raw_note else "")
        if row.raw is None and row.raw_note:  # a side left out on purpose says why instead of "error"
            raw = row.raw_note
        dbnd = fmt(row.dbnd, row.unit) + (f" ({row.dbnd_note})" if row.dbnd_note else "")
        ratio = "error" if row.ratio is None else f"{row.ratio:.3g}×"
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        lines.append(f"| {row.measure} | {raw} | {dbnd} | {ratio} | {row.target} | {met} |")
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GB"
    except OSError:
        pass
    return "?"


def _git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def machine_info() -> dict[str, Any]:
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "prefect": _version("prefect"),
        "dbnd_prefect": f"{_version('dbnd-prefect')} (commit {_git_commit()})",
        "pandas": _version("pandas"),
        "pyarrow": _version("pyarrow"),
    }


def machine_lines(info: dict[str, Any]) -> str:
    return (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, {info['os']}; "
        f"Python {info['python']}, Prefect {info['prefect']}, dbnd_prefect {info['dbnd_prefect']}, "
        f"pandas {info['pandas']}, pyarrow {info['pyarrow']}. Run {info['date']}; "
        f"load average at start {info.get('load_start', '?')}, at end {info.get('load_end', '?')}."
    )
