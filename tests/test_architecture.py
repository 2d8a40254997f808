"""The run path resolves each thing once, and Prefect's private names are used in one module only.

A `dbnd run PIPELINE --set TASK.PARAM=VALUE` is counted call by call (a profiler on every thread): the
configuration is resolved once, the root call is bound once, `TASK.PARAM` is coerced once, each data input
gets one Target, each task its output folder once, and the profile is checked once. A regression that
resolves something again on the way down shows here as a count above one.
"""

from __future__ import annotations

import ast
import collections
import re
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from pandas import DataFrame

from dbnd_prefect import pipeline, prefect_internals, task
from dbnd_prefect.pytest_plugin import run_cmd

PACKAGE = Path(__file__).resolve().parents[1] / "dbnd_prefect"


@task
def arch_clean(raw: DataFrame, threshold: int = 0) -> DataFrame:
    return raw[raw["value"] > threshold]


@task
def arch_total(clean: DataFrame, scale: int = 1) -> int:
    return int(clean["value"].sum()) * scale


@pipeline
def arch_pipeline(raw: DataFrame, threshold: int = 0):
    return arch_total(arch_clean(raw, threshold))


class CallCounter:
    """Counts calls of chosen functions in every thread while active (by code object)."""

    def __init__(self, functions: dict[str, Callable[..., Any]]) -> None:
        self.codes = {getattr(f, "__code__", None) or f.__init__.__code__: name for name, f in functions.items()}
        self.counts: collections.Counter[str] = collections.Counter()
        self.calls: dict[str, list[Any]] = collections.defaultdict(list)
        self._lock = threading.Lock()

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = self.codes.get(frame.f_code)
            if name is not None:
                with self._lock:
                    self.counts[name] += 1
                    self.calls[name].append(dict(frame.f_locals))

    def __enter__(self) -> "CallCounter":
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]


def test_one_dbnd_run_resolves_config_binds_coerces_and_checks_once(workdir: Path) -> None:
    from dbnd_prefect import calls, layout
    from dbnd_prefect.config import resolved
    from dbnd_prefect.definitions import coerce
    from dbnd_prefect.engine import profile_checks
    from dbnd_prefect.targets import Target

    DataFrame({"value": [1, 5, 9]}).to_csv(workdir / "raw.csv", index=False)
    counter = CallCounter({
        "resolve_run_config": resolved.resolve_run_config,
        "bind_arguments": calls.bind_arguments,
        "coerce": coerce.coerce,
        "Target": Target,
        "output_dir": layout.output_dir,
        "check_profile": profile_checks.check_profile,
        "task_runner_for": profile_checks.task_runner_for,
    })
    with counter:
        result = run_cmd(["run", f"{__name__}.arch_pipeline", "--set", "raw=raw.csv",
                          "--set", "arch_total.scale=3", "--task-version", "now"])
    assert result.exit_code == 0, result
    assert "arch_total" in result.stdout

    assert counter.counts["resolve_run_config"] == 1  # the configuration, resolved once for the run
    bound = collections.Counter(c["definition"].name for c in counter.calls["bind_arguments"])
    assert bound == {"arch_pipeline": 1, "arch_clean": 1, "arch_total": 1}  # each call bound once
    scale = [c for c in counter.calls["coerce"] if c["spec"].name == "scale" and c["value"] == "3"]
    assert len(scale) == 1  # the --set value, coerced once
    raw_targets = [c for c in counter.calls["Target"] if str(c.get("uri", "")).endswith("raw.csv")]
    assert len(raw_targets) == 1  # the data input's Target, made once and carried down
    folders = collections.Counter(c["task_name"] for c in counter.calls["output_dir"])
    assert folders == {"arch_clean": 1, "arch_total": 1}  # each task's output folder, computed once
    assert counter.counts["check_profile"] >= 1
    assert counter.counts["task_runner_for"] <= 2  # checked once (the checked flag), applied once


def test_a_second_in_process_run_resolves_its_own_config(workdir: Path) -> None:
    """Resolved once per run, not once per process: a second `dbnd run` with another --set sees it."""
    DataFrame({"value": [1, 5, 9]}).to_csv(workdir / "raw.csv", index=False)
    first = run_cmd(["run", f"{__name__}.arch_pipeline", "--set", "raw=raw.csv", "--set", "threshold=4"])
    second = run_cmd(["run", f"{__name__}.arch_pipeline", "--set", "raw=raw.csv", "--set", "threshold=8"])
    assert first.exit_code == second.exit_code == 0, (first, second)
    from dbnd_prefect.context import last_run

    assert last_run().config.get("arch_pipeline", "threshold") == "8"


def test_the_installed_prefect_has_every_private_name_dbnd_uses() -> None:
    """A Prefect upgrade that drops one says here which name and what it was for."""
    assert prefect_internals.check_all() == []


PRIVATE_PREFECT = re.compile(r"prefect\._internal|\._instances\b|(?<!\w)(_httpx_settings|_final_state|__var__|"
                             r"_register_atexit|_sync=True)\b|QueueService")


def test_private_prefect_names_appear_in_prefect_internals_only() -> None:
    """Every use of a private Prefect name goes through prefect_internals.py, where check_all covers it."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "prefect_internals.py":
            continue
        tree = ast.parse(path.read_text())
        code_lines = {n.lineno for n in ast.walk(tree) if isinstance(n, (ast.expr, ast.stmt))
                      and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if number in code_lines and PRIVATE_PREFECT.search(code):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_core_names_no_plugin() -> None:
    """Spark plugs in through the registry: no module outside dbnd_prefect/spark imports it, except the CLI (which
    quiets pyspark's console output)."""
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("spark", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n.startswith("dbnd_prefect.spark") for n in names):
                importers.append(f"{relative}:{node.lineno}")
    assert importers == []


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
