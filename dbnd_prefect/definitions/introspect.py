"""What a definition's code tells without running it: the tasks a pipeline calls, how a definition reads.

A pipeline body calls tasks by the names its code refers to: globals of its module (`train_model(...)`),
attributes of imported modules (`steps.train_model(...)`) and variables it closes over. Nested
pipelines are followed. Nothing is run; a task chosen at run time by other means is not found.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

from dbnd_prefect.definitions.definition import PipelineDefinition, TaskDefinition


def called_tasks(pipeline: Any) -> list[Any]:
    """The dbnd tasks `pipeline` calls, nested pipelines' tasks included, in the order the code names them."""
    found: dict[int, Any] = {}
    seen_pipelines = {id(pipeline)}
    queue = [pipeline]
    while queue:
        current = queue.pop(0)
        for value in _referenced(current.func):
            if isinstance(value, TaskDefinition):
                found.setdefault(id(value), value)
            elif isinstance(value, PipelineDefinition) and id(value) not in seen_pipelines:
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


def signature_text(obj: Any) -> str:
    """`name(param: type = default, ...) -> out1, out2` as shown by `dbnd show-tasks`."""
    params = []
    for spec in obj.params:
        text = f"{spec.name}: {spec.describe_type()}"
        if not spec.required:
            text += f" = {spec.default!r}"
        params.append(text)
    text = f"{obj.name}({', '.join(params)})"
    outputs = getattr(obj, "outputs", None)
    if outputs:
        text += " -> " + ", ".join(o.name for o in outputs)
    return text


def kind_of(obj: Any) -> str:
    """'task' or 'pipeline'."""
    return obj.kind


def first_doc_line(obj: Any) -> str:
    doc = inspect.getdoc(obj.func) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
