"""Where the commands' results go: rich tables on a terminal, plain greppable text otherwise."""

from __future__ import annotations

import sys
from typing import IO, Any, Callable


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Whether `stream` (stdout by default) is an interactive terminal; False for files, pipes and captures."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def show(plain: Callable[[], str], table: Callable[[], Any]) -> None:
    """Print `table()` (a rich renderable) on a terminal, else `plain()`: lines that tests and scripts grep."""
    if not is_terminal():
        print(plain())
        return
    from rich.console import Console

    Console(soft_wrap=False).print(table())
