"""`dbnd run TASK --help` never imports Prefect; a second time it gives the same text without importing the
project either, until a source file, a configuration file or the command line changes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

DBND = Path(sys.executable).parent / "dbnd"

STEPS = '''
from dbnd_prefect import task


@task
def scale(values: list, factor: float = 2.0) -> list:
    """Multiply each value."""
    return [v * factor for v in values]
'''


def help_of(project: Path, cache: Path, *extra: str) -> tuple[str, set[str]]:
    """(the help text, the top-level modules the process imported)."""
    env = {**os.environ, "DBND_CACHE_DIR": str(cache), "PYTHONPATH": str(project), "PYTHONPROFILEIMPORTTIME": "1"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(DBND), "run", "scale", "--help", *extra], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.stdout, imported


def read_definitions(imported: set[str]) -> bool:
    """Whether the process read the project's definitions (the help was computed, not taken from the cache)."""
    return "dbnd_prefect.definitions.definition" in imported


def test_a_second_help_imports_nothing_of_the_project_and_follows_every_change(tmp_path):
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "steps.py").write_text(STEPS)
    (project / "dbnd.toml").write_text('[run]\nmodules = ["steps"]\n')

    first, imported = help_of(project, cache)
    assert "factor" in first and "2.0" in first and read_definitions(imported) and "prefect" not in imported
    second, imported = help_of(project, cache)
    assert second == first and not any(name.startswith("dbnd_prefect.definitions") for name in imported)

    (project / "dbnd.toml").write_text('[run]\nmodules = ["steps"]\n\n[scale]\nfactor = 3.5\n')
    configured, imported = help_of(project, cache)
    assert "3.5" in configured and read_definitions(imported)  # a configuration file changed: computed again

    (project / "steps.py").write_text(STEPS.replace("factor: float = 2.0", "factor: float = 4.0, offset: int = 1"))
    edited, _ = help_of(project, cache)
    assert "offset" in edited and "4.0" in edited  # the task's source changed

    with_set, imported = help_of(project, cache, "--set", "scale.factor=9")
    assert "9" in with_set and with_set != edited and read_definitions(imported)  # another command line
    assert help_of(project, cache)[0] == edited
