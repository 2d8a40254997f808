"""mkdocs hook: the `dbnd` command reference, generated from the CLI's own help at build time.

Where a page holds the marker `<!-- cli-reference -->`, the hook puts the output of
`python -m dbnd_prefect --help` and of `python -m dbnd_prefect COMMAND --help` for every command the
top-level help lists (and for the subcommands a command's help lists, such as `config explain`). The
commands run with the interpreter that runs mkdocs, in the repository root, with COLUMNS=100 and
NO_COLOR=1, so the page is what a user's terminal shows. A command whose help fails stops the build.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

MARKER = "<!-- cli-reference -->"
ROOT = Path(__file__).resolve().parents[2]
# a command line in a "Commands:" section: two spaces, the name, a colon (options start with "-")
_COMMAND = re.compile(r"^  ([a-z][a-z0-9-]*): ")


def run_help(*command: str) -> str:
    """`python -m dbnd_prefect COMMAND... --help`, as a 100-column terminal without colours shows it."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    args = [sys.executable, "-m", "dbnd_prefect", *command, "--help"]
    try:
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise PluginError(f"cli_reference: `dbnd {' '.join(command)} --help` did not finish in 120 s") from None
    if done.returncode != 0:
        raise PluginError(f"cli_reference: `dbnd {' '.join(command)} --help` exited with {done.returncode}:\n"
                          f"{done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.rstrip()


def listed_commands(help_text: str) -> list[str]:
    """The command names a help text lists under `Commands:` (not the `--help`/`--version` options)."""
    names: list[str] = []
    in_commands = False
    for line in help_text.splitlines():
        if line.rstrip() == "Commands:":
            in_commands = True
            continue
        if in_commands:
            found = _COMMAND.match(line)
            if found:
                names.append(found.group(1))
            elif not line.startswith("  "):
                in_commands = False
    return names


def collect() -> list[tuple[tuple[str, ...], str]]:
    """(command path, help text) for `dbnd` and every command and subcommand, in the order listed."""
    top = run_help()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        first = list(pool.map(lambda name: ((name,), run_help(name)), listed_commands(top)))
        nested = {path: list(pool.map(lambda sub, p=path: ((*p, sub), run_help(*p, sub)), listed_commands(text)))
                  for path, text in first}
    found: list[tuple[tuple[str, ...], str]] = [((), top)]
    for path, text in first:
        found.append((path, text))
        found.extend(nested[path])
    return found


def _without_epilogue(text: str, epilogue: str) -> str:
    # every help ends with the same precedence line; the page shows it once, under `dbnd --help`
    lines = text.splitlines()
    if epilogue and lines and lines[-1] == epilogue:
        lines = lines[:-1]
    return "\n".join(lines).rstrip()


def reference() -> str:
    """The markdown of the reference: one section per command with its help text."""
    helps = collect()
    top = helps[0][1]
    epilogue = top.splitlines()[-1] if top.splitlines() else ""
    parts = ["## `dbnd`", "", "```text", f"$ dbnd --help\n{top}", "```", ""]
    for path, text in helps[1:]:
        command = " ".join(path)
        level = "##" if len(path) == 1 else "###"
        parts += [f"{level} `dbnd {command}`", "", "```text", f"$ dbnd {command} --help",
                  _without_epilogue(text, epilogue), "```", ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs hook signature
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
