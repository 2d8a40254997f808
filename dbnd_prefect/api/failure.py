"""A run that failed, as one error: which task or pipeline failed and how, for the edge to print."""

from __future__ import annotations

from typing import Any

from dbnd_prefect.definitions import registry
from dbnd_prefect.definitions.introspect import kind_of
from dbnd_prefect.errors import DbndError, TaskFailedError
from dbnd_prefect.redaction import one_line


def failed(root: Any, exc: BaseException) -> TaskFailedError:
    """A TaskFailedError naming the deepest task of `root` on `exc`'s traceback and the error, on one line."""
    name, kind = failing_task(root, exc)
    detail = exc.message if isinstance(exc, DbndError) else f"{type(exc).__name__}: {one_line(exc, 2000)}"
    error = TaskFailedError(f"{kind} '{name}' failed: {detail}", hint="run with --verbose for the traceback",
                            task=name)
    error.task_name = name  # type: ignore[attr-defined]
    return error


def failing_task(root: Any, exc: BaseException) -> tuple[str, str]:
    """(name, "task"/"pipeline") of the deepest task function on the exception's traceback."""
    codes = {getattr(item.func, "__code__", None): item for item in registry.all_items().values()}
    if root is not None:
        codes.setdefault(getattr(root.func, "__code__", None), root)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        item = codes.get(tb.tb_frame.f_code)
        if item is not None:
            found = item
        tb = tb.tb_next
    found = found or root
    return (found.name, kind_of(found)) if found is not None else ("(unknown)", "task")


__all__ = ["failed", "failing_task"]
