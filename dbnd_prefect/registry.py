"""Every decorated task and pipeline in this process, by name (for the CLI and `--set` checks)."""

from __future__ import annotations

import difflib
from typing import Any

from dbnd_prefect.errors import TaskNotFoundError

_by_name: dict[str, Any] = {}


def register(obj: Any) -> None:
    """Record a task or pipeline; a later definition with the same name replaces the earlier one."""
    _by_name[obj.name] = obj


def get(name: str) -> Any:
    """The task or pipeline called `name`, or TaskNotFoundError suggesting close names."""
    try:
        return _by_name[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_by_name), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `dbnd show-tasks`"
        raise TaskNotFoundError(f"unknown task or pipeline '{name}'", hint=hint) from None


def all_items() -> dict[str, Any]:
    return dict(_by_name)
