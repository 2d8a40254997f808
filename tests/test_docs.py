"""The documentation site builds cleanly, and its command-line reference lists every `dbnd` command.

The site is built once per module with `mkdocs build --strict` (mkdocs.yml at the repository root), which
also runs the hooks in docs/hooks/ that generate the CLI reference and the configuration tables from the
code: a broken link, a missing anchor, a configuration key without a description or a failing `--help`
fails the build.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_COMMAND = re.compile(r"^  ([a-z][a-z0-9-]*): ")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    site_dir = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return done, site_dir


def listed_commands() -> list[str]:
    """The commands `python -m dbnd_prefect --help` lists under `Commands:`."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "dbnd_prefect", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names: list[str] = []
    in_commands = False
    for line in done.stdout.splitlines():
        if line.rstrip() == "Commands:":
            in_commands = True
        elif in_commands and (found := _COMMAND.match(line)):
            names.append(found.group(1))
        elif in_commands and not line.startswith("  "):
            in_commands = False
    return names


def test_the_docs_build_in_strict_mode(site: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, site_dir = site
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (site_dir / "index.html").is_file()


def test_the_cli_page_lists_every_command(site: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, site_dir = site
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}"
    page = html.unescape(re.sub(r"<[^>]+>", "", (site_dir / "cli" / "index.html").read_text(encoding="utf-8")))
    commands = listed_commands()
    assert "run" in commands, commands
    missing = [name for name in commands if f"$ dbnd {name} --help" not in page]
    assert missing == [], f"docs/cli.md's generated reference lacks: {missing}"
