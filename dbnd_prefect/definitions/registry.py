"""Every decorated task and pipeline in this process, by name and identity (for the CLI and `--set` checks).

A name may belong to several definitions with different identities (two files each defining `clean`):
all are kept, and asking for that name alone is an error naming them. The same identity registered again
(the module imported a second time under another name, such as `__main__` and `flows.x`; a notebook cell
run again) replaces the earlier definition.
"""

from __future__ import annotations

from typing import Any

from dbnd_prefect.errors import close_names, TaskNotFoundError

_by_name: dict[str, dict[str, Any]] = {}  # name -> {identity: definition}, latest last
_outlines_only = False  # set by commands that only read definitions (see `read_definitions_only`)


def read_definitions_only() -> None:
    """From now on this process only reads its definitions (the `dbnd` executable running `dbnd plan`,
    `versions`, `show-*`, `--help`): a `@pipeline` defined while Prefect is not imported is an outline, not a
    Prefect flow, so the command never pays for importing Prefect. A process that has imported Prefect keeps
    getting real flows. Never for a call in process (tests, notebooks): it may run the same pipelines later."""
    global _outlines_only
    _outlines_only = True


def outlines_only() -> bool:
    """Whether a definition made now should be an outline (see `read_definitions_only`)."""
    import sys

    return _outlines_only and "prefect" not in sys.modules


def register(obj: Any) -> None:
    """Record a task or pipeline; one with the same name and identity replaces the earlier one."""
    defined = _by_name.setdefault(obj.name, {})
    defined.pop(obj.task_id, None)
    defined[obj.task_id] = obj


def get(name: str) -> Any:
    """The task or pipeline called `name`; TaskNotFoundError suggesting close names, or naming every
    definition when several modules define one with that name."""
    found = definitions(name)
    if not found:
        close = close_names(name, _by_name)
        hint = f"did you mean {', '.join(close)}?" if close else "see `dbnd show-tasks`"
        raise TaskNotFoundError(f"unknown task or pipeline '{name}'", hint=hint)
    if len(found) > 1:
        raise ambiguous(name, [dotted_path(obj) for obj in found])
    return found[0]


def definitions(name: str) -> list[Any]:
    """Every registered definition called `name` (of distinct identities), oldest first."""
    return list(_by_name.get(name, {}).values())


def by_identity(task_id: str) -> Any | None:
    """The registered task or pipeline with identity `task_id` (`flows/x.py:func`), if any."""
    for defined in _by_name.values():
        if task_id in defined:
            return defined[task_id]
    return None


def all_items() -> dict[str, Any]:
    """Name -> definition; for a name with several definitions, the latest (see `definitions`)."""
    return {name: list(defined.values())[-1] for name, defined in _by_name.items() if defined}


def dotted_path(obj: Any) -> str:
    """How to name `obj` alone on the command line: `module.qualname`, or its identity (`path.py:qualname`)
    when its module has no importable name (a script's `__main__`, a notebook)."""
    module = getattr(obj.func, "__module__", None) or ""
    qualname = obj.func.__qualname__
    if module and module != "__main__" and not module.startswith("__") and "<locals>" not in qualname:
        return f"{module}.{qualname}"
    return obj.task_id


def ambiguous(name: str, choices: list[str]) -> TaskNotFoundError:
    """The error for a name that several definitions share: names them all and how to pick one."""
    shown = ", ".join(choices)
    return TaskNotFoundError(f"task or pipeline name '{name}' is ambiguous: {len(choices)} definitions ({shown})",
                             hint=f"pick one by its full name, e.g. {choices[0]}")


def import_by_name(module: str, qualname: str, task_id: str) -> Any:
    """The task `module.qualname` (what a pickled task reference names), checked to be the same definition."""
    import importlib

    from dbnd_prefect.definitions.definition import TaskDefinition
    from dbnd_prefect.errors import ParameterError

    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, TaskDefinition) or found.task_id != task_id:
        raise ParameterError(f"{module}.{qualname} is not the dbnd task {task_id} in this process",
                             hint="run the same version of the project's code on every worker")
    return found


def import_by_identity(identity: str, module: str, root: str) -> Any:
    """The dbnd task with this identity (`path.py:qualname`): from its module when that imports, else from its
    file under `root` (a worker of a work pool, after its pull step)."""
    import importlib.util
    import os
    import sys

    from dbnd_prefect.definitions.definition import TaskDefinition
    from dbnd_prefect.errors import ConfigError, DbndError

    base = os.path.abspath(root)
    for folder in (base, os.getcwd()):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    relative, _, qualname = identity.partition(":")
    if module and module != "__main__":
        try:
            return import_by_name(module, qualname, identity)
        except (ImportError, AttributeError, DbndError):
            pass
    path = os.path.join(base, relative)
    if not os.path.isfile(path):
        raise ConfigError(f"task {identity} cannot be found here: no module {module!r} and no file {path}",
                          hint="run the work pool's runs in the project's folder, with its code")
    name = "dbnd_task_" + "".join(c if c.isalnum() else "_" for c in relative.removesuffix(".py"))
    loaded = sys.modules.get(name)
    if loaded is None:
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
    found: Any = loaded
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, TaskDefinition) or found.task_id != identity:
        raise ConfigError(f"{path} defines no dbnd task {qualname} with identity {identity}",
                          hint="run the same version of the project's code in the work pool's runs")
    return found
