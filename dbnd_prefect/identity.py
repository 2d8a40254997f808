"""A task's identity: where its code lives in the project, whatever name Python imported it under.

The identity is the source file's path relative to the project root (always with `/`), a colon and the
qualified name: `flows/wine_quality.py:fetch_data`. So the same function is the same task whether it runs
as a script (`__main__`), by `dbnd run` (a dotted name, `-m`, or `file.py:func`), in a deployment or in
`dbnd reproduce`, and two functions with one name in two files stay distinct.

- Project root: the nearest folder at or above the file's folder that holds one of `PROJECT_MARKERS`
  (`dbnd.toml`, `pyproject.toml`, `prefect.yaml`, `.git`). With none, the folder above the file's
  top-most package (for a loose script: its own folder).
- Installed code (under `site-packages`/`dist-packages`) and the standard library are named from that
  folder: `mypkg/tasks.py:f`, `json/__init__.py:dumps`.
- Code with no source file on disk: `<notebook>:qualname` for a Jupyter/IPython cell (ipykernel names
  cells after a temporary file that changes with every kernel), `<exec>:qualname` for other `exec`'d
  or `python -c` code.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

PROJECT_MARKERS = ("dbnd.toml", "pyproject.toml", "prefect.yaml", ".git")
NOTEBOOK = "<notebook>"
EXEC = "<exec>"
_LIBRARY_FOLDERS = ("site-packages", "dist-packages")


def identity_of(obj: Any) -> str:
    """`path/relative/to/project.py:qualname` of a function or class (see the module docstring)."""
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    return f"{source_of(obj)}:{qualname}"


def source_of(obj: Any) -> str:
    """The file part of `obj`'s identity: a project-relative path, `<notebook>` or `<exec>`."""
    filename, namespace = _where_defined(obj)
    return file_identity(filename, namespace)


def module_source(module: Any) -> str:
    """The file part of the identity of code in `module` (its module-level names, say)."""
    return file_identity(getattr(module, "__file__", None), vars(module))


def file_identity(filename: str | None, namespace: dict[str, Any] | None = None) -> str:
    """`filename` relative to its project root; `<notebook>`/`<exec>` when it is no file on disk.

    `namespace` (the code's globals) tells an IPython cell from other generated code when the
    file name alone does not.
    """
    if filename and not filename.startswith("<") and os.path.isfile(filename):
        return _relative_to_root(os.path.realpath(filename))
    if _is_notebook_cell(filename, namespace):
        return NOTEBOOK
    return EXEC


def project_root(path: str | os.PathLike[str]) -> Path:
    """The project root for a file or folder: nearest ancestor with a marker, else above the top package."""
    real = os.path.realpath(path)
    folder = real if os.path.isdir(real) else os.path.dirname(real)
    return Path(_root_of_folder(folder))


def is_identity(text: str) -> bool:
    """True for identities of this form; False for the `module.qualname` ids older manifests recorded."""
    path, sep, qualname = text.partition(":")
    return bool(path and sep and qualname)


# --- how -----------------------------------------------------------------------------------------------------


def _where_defined(obj: Any) -> tuple[str | None, dict[str, Any] | None]:
    """(file name, globals) of the code of a function, class or callable object."""
    try:
        target = inspect.unwrap(obj)  # decorators with functools.wraps: the decorated function's own file
    except ValueError:  # a __wrapped__ cycle
        target = obj
    code = getattr(target, "__code__", None)
    if code is not None and hasattr(code, "co_filename"):
        return code.co_filename, getattr(target, "__globals__", None)
    cls = target if inspect.isclass(target) else type(target)
    module = sys.modules.get(getattr(cls, "__module__", "") or "")
    namespace = vars(module) if module is not None else None
    if getattr(module, "__file__", None):
        return module.__file__, namespace
    for member in vars(cls).values():  # a class's methods know its file when its module has none
        member_code = getattr(member, "__code__", None) or getattr(getattr(member, "__func__", None), "__code__", None)
        if member_code is not None and not member_code.co_filename.startswith("<"):
            return member_code.co_filename, namespace
    return None, namespace


def _is_notebook_cell(filename: str | None, namespace: dict[str, Any] | None) -> bool:
    if filename:
        if filename.startswith("<ipython-input-") or filename == os.environ.get("IPYKERNEL_CELL_NAME"):
            return True
        if os.path.basename(os.path.dirname(filename)).startswith("ipykernel_"):
            return True
    return bool(namespace and namespace.get("__name__") == "__main__" and "get_ipython" in namespace)


def _relative_to_root(real_file: str) -> str:
    root = _root_of_folder(os.path.dirname(real_file))
    return Path(os.path.relpath(real_file, root)).as_posix()


@functools.lru_cache(maxsize=1)
def _stdlib_folders() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(sorted({os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib") if paths.get(k)}))


@functools.lru_cache(maxsize=1024)  # a project's layout is read once per process (about 0.1 ms per lookup)
def _root_of_folder(folder: str) -> str:
    parts = Path(folder).parts
    for name in _LIBRARY_FOLDERS:
        if name in parts:  # installed code: named as it is imported, wherever the environment lives
            index = len(parts) - 1 - parts[::-1].index(name)
            return str(Path(*parts[: index + 1]))
    for stdlib in _stdlib_folders():
        if folder == stdlib or folder.startswith(stdlib + os.sep):
            return stdlib
    current = folder
    while True:
        if any(os.path.exists(os.path.join(current, marker)) for marker in PROJECT_MARKERS):
            return current
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    top = folder
    while os.path.isfile(os.path.join(top, "__init__.py")) and os.path.dirname(top) != top:
        top = os.path.dirname(top)
    return top


__all__ = ["PROJECT_MARKERS", "NOTEBOOK", "EXEC", "identity_of", "source_of", "module_source", "file_identity",
           "project_root", "is_identity"]
