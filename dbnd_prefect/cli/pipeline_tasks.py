"""The tasks a pipeline calls, read from its code (for `dbnd run PIPELINE --help`).

A pipeline body calls tasks by the names its code refers to: globals of its module (`train_model(...)`),
attributes of imported modules (`steps.train_model(...)`) and variables it closes over. Nested
pipelines are followed. Nothing is run; a task chosen at run time by other means is not found.
"""

from __future__ import annotations

import types
from typing import Any


def called_tasks(pipeline: Any) -> list[Any]:
    """The dbnd tasks `pipeline` calls, nested pipelines' tasks included, in the order the code names them."""
    from dbnd_prefect.decorators import DbndPipeline, DbndTask

    found: dict[int, Any] = {}
    seen_pipelines = {id(pipeline)}
    queue = [pipeline]
    while queue:
        current = queue.pop(0)
        for value in _referenced(current.func):
            if isinstance(value, DbndTask):
                found.setdefault(id(value), value)
            elif isinstance(value, DbndPipeline) and id(value) not in seen_pipelines:
                seen_pipelines.add(id(value))
                queue.append(value)
    return list(found.values())


def _referenced(func: Any) -> list[Any]:
    """Objects `func`'s code refers to by name: globals, attributes of referenced modules, closure cells."""
    code = getattr(func, "__code__", None)
    if code is None:
        return []
    names = _names(code)
    namespace = getattr(func, "__globals__", {})
    values: list[Any] = []
    for name in names:
        if name in namespace:
            values.append(namespace[name])
    for cell in getattr(func, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell: the variable is not bound yet
            pass
    for module in [v for v in values if isinstance(v, types.ModuleType)]:
        values.extend(vars(module)[name] for name in names if name in vars(module))
    return values


def _names(code: types.CodeType) -> list[str]:
    """Names used by `code` and the code nested in it (comprehensions, lambdas), first use first."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += [name for name in _names(const) if name not in names]
    return names
