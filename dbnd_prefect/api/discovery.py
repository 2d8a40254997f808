"""Finding tasks and pipelines by the names people type on the command line.

A TASK may be given as
- a name (`prepare_data`), looked up among the tasks of the modules the project lists in
  `[run] modules` and those given with `-m/--module` (repeatable);
- a dotted path (`flows.wine_quality.predict_wine_quality`): module plus attribute;
- a file and attribute (`path/to/file.py:func`).
As for a Python script, the working directory is put on `sys.path` first, so the project's own
packages import without installing them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from dbnd_prefect.definitions import registry as task_registry
from dbnd_prefect.definitions.definition import is_definition
from dbnd_prefect.errors import close_names, ConfigError, TaskNotFoundError


def put_on_path(cwd: str | os.PathLike[str] | None = None) -> None:
    """Put the working directory first on `sys.path`, as `python script.py` does for its folder."""
    folder = str(Path(cwd or Path.cwd()).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


def import_modules(names: Iterable[str], origin: str = "-m/--module") -> None:
    """Import each module so its tasks register; a module that fails names itself and the cause."""
    for name in names:
        import_module(name, origin)


def import_module(name: str, origin: str = "-m/--module") -> Any:
    """Import one module by dotted name; ConfigError (one line) when it is missing or raises."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigError(
                f"cannot import module '{name}' (from {origin}): no module named '{exc.name}'",
                hint="check the name; modules are found from the working directory and the installed packages",
            ) from exc
        raise ConfigError(f"error importing module '{name}': {_one_line(exc)}",
                          hint="fix the import in that module (run with --verbose for the traceback)") from exc
    except Exception as exc:
        raise ConfigError(f"error importing module '{name}': {_one_line(exc)}",
                          hint="fix that module (run with --verbose for the traceback)") from exc


def load_file(path: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None) -> Any:
    """Import a Python file as a module; its folder goes on `sys.path` like a script's."""
    base = Path(cwd or Path.cwd()).resolve()
    file = Path(path)
    file = (file if file.is_absolute() else base / file).resolve()
    if not file.is_file():
        raise TaskNotFoundError(f"file not found: {path}", hint="give TASK as path/to/file.py:function")
    name = _module_name_for(file, base)
    if name in sys.modules and Path(getattr(sys.modules[name], "__file__", "") or "").resolve() == file:
        return sys.modules[name]
    if name.count(".") == 0 and str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    if "." in name:
        return import_module(name, str(path))
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise TaskNotFoundError(f"cannot load {path} as a Python module", hint="give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"error importing {path}: {_one_line(exc)}",
                          hint="fix that file (run with --verbose for the traceback)") from exc
    return module


def _module_name_for(file: Path, base: Path) -> str:
    """`pkg/mod.py` under the working directory is `pkg.mod` when `pkg` is a package; else `mod`."""
    try:
        parts = file.with_suffix("").relative_to(base).parts
    except ValueError:
        return file.stem
    folder = base
    for part in parts[:-1]:
        folder = folder / part
        if not (folder / "__init__.py").is_file() or not part.isidentifier():
            return file.stem
    return ".".join(parts)


def find_task(name: str, modules: Sequence[str] = (), cwd: str | os.PathLike[str] | None = None) -> Any:
    """The task or pipeline that TASK `name` refers to (see the module docstring for the forms).

    `modules` are the project's `run.modules` plus any `-m` modules; they are imported first.
    Raises TaskNotFoundError (with close names) or ConfigError (a module that cannot be imported).
    """
    put_on_path(cwd)
    import_modules(modules)
    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        file, _, attr = name.partition(":")
        return _attribute(load_file(file, cwd), attr, name)
    if "." in name and name not in task_registry.all_items():
        module_name, _, attr = name.rpartition(".")
        try:
            module = import_module(module_name, name)
        except ConfigError as exc:
            if name.partition(".")[0] in task_registry.all_items():  # e.g. `prepare_data.raw_data` typed as TASK
                raise _not_found(name, modules) from None
            raise TaskNotFoundError(exc.message, hint=exc.hint) from exc
        return _attribute(module, attr, name)
    if task_registry.definitions(name):
        return task_registry.get(name)  # raises, naming each, when several modules define `name`
    raise _not_found(name, modules)


def find_by_identity(task_id: str, cwd: str | os.PathLike[str] | None = None) -> Any:
    """The task or pipeline whose identity is `task_id` (`flows/x.py:func`, as recorded in manifests),
    loading its file from the project of the working directory when it is not defined yet."""
    from dbnd_prefect.identity import EXEC, NOTEBOOK, project_root

    found = task_registry.by_identity(task_id)
    if found is not None:
        return found
    path, _, _ = task_id.partition(":")
    if path in (NOTEBOOK, EXEC):
        raise TaskNotFoundError(f"task '{task_id}' was defined in a notebook or exec'd code, not in a file",
                                hint="define it in this process first (run its cell), then reproduce from there")
    root = project_root(cwd or Path.cwd())
    file = root / path
    if not file.is_file():
        raise TaskNotFoundError(f"task '{task_id}': {path} is not in the project at {root}",
                                hint="run this from the project that recorded the run")
    put_on_path(cwd)
    load_file(file, cwd)
    found = task_registry.by_identity(task_id)
    if found is None:
        raise TaskNotFoundError(f"task '{task_id}' no longer exists in {path}",
                                hint="it was renamed or removed since the run was recorded")
    return found


def recorded_versions(name: str, versions: list[dict[str, Any]], obj: Any = None) -> list[dict[str, Any]]:
    """The stored versions (manifests) of task `obj`, or of the one task called `name` when `obj` is None.

    TaskNotFoundError naming each when versions of several tasks called `name` (in different files) are
    stored. Manifests written before identities were file based count as `name`'s, never as ambiguous.
    """
    from dbnd_prefect.identity import is_identity

    def recorded_as(manifest: dict[str, Any]) -> str:
        return str(manifest.get("signature_parts", {}).get("task") or "")

    if obj is not None:
        return [v for v in versions if recorded_as(v) == obj.task_id or not is_identity(recorded_as(v))]
    identities = sorted({recorded_as(v) for v in versions if is_identity(recorded_as(v))})
    if len(identities) > 1:
        raise task_registry.ambiguous(name, identities)
    return versions


def _attribute(module: Any, attr: str, shown: str) -> Any:
    obj = getattr(module, attr, None)
    if obj is None:
        found = [n for n, o in vars(module).items() if is_definition(o)]
        close = close_names(attr, found)
        hint = f"did you mean {', '.join(close)}?" if close else (
            f"tasks there: {', '.join(found)}" if found else "that module defines no @task or @pipeline")
        raise TaskNotFoundError(f"'{module.__name__}' has no task or pipeline '{attr}' (TASK {shown})", hint=hint)
    if not is_definition(obj):
        raise TaskNotFoundError(f"'{shown}' is not a @task or @pipeline (it is {type(obj).__name__})",
                                hint="decorate the function with @task or @pipeline")
    return obj


def _not_found(name: str, modules: Sequence[str]) -> TaskNotFoundError:
    known = list(task_registry.all_items())
    close: list[str] = []
    for candidate in (name, name.rpartition(".")[2], name.partition(".")[0]):
        close = close or close_names(candidate, known)
    if name.isidentifier() and importlib.util.find_spec(name) is not None:
        hint = f"'{name}' is a module, not a task: give -m {name} TASK or {name}.TASK (see `dbnd show-tasks -m {name}`)"
    elif close:
        hint = f"did you mean {', '.join(close)}?"
    elif not modules:
        hint = ("no modules were searched: give -m MODULE, list them in [run] modules of dbnd.toml, "
                "or use pkg.module.function / path/to/file.py:function")
    else:
        hint = f"searched modules: {', '.join(modules)}; see `dbnd show-tasks`"
    return TaskNotFoundError(f"unknown task or pipeline '{name}'", hint=hint)


def discover(modules: Sequence[str] = (), cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Every task and pipeline known after importing `modules`, by name (by full name where several
    modules define one name)."""
    put_on_path(cwd)
    import_modules(modules)
    found: dict[str, Any] = {}
    for name in task_registry.all_items():
        defined = task_registry.definitions(name)
        for obj in defined:
            found[name if len(defined) == 1 else task_registry.dotted_path(obj)] = obj
    return dict(sorted(found.items()))


def _one_line(exc: BaseException) -> str:
    from dbnd_prefect.redaction import one_line

    text = one_line(exc, 2000)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
