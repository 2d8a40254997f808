"""Digests of a task's code: its own source plus the project functions, classes and constants it reaches.

Starting from a function, names in its bytecode are resolved through its globals, closure and defaults;
what resolves to *project code* (not the standard library, not an installed package, not prefect or
dbnd_prefect) is followed transitively, to a bounded depth and with cycles cut. Editing any reached helper
changes the digest; editing code the task cannot reach does not.
"""

from __future__ import annotations

import functools
import inspect
import os
import site
import sys
import sysconfig
import types
from typing import Any

import xxhash

from dbnd_prefect.identity import identity_of, module_source, source_of
from dbnd_prefect.fingerprint.data import fingerprint_value

DEFAULT_MAX_DEPTH = 10
_EXCLUDED_PACKAGES = ("prefect", "dbnd_prefect")
_CONSTANT_TYPES = (bool, int, float, complex, str, bytes)


def fingerprint_code(func: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """Hex digest of `func`'s source and of every project function/class/constant it reaches."""
    return describe_code(func, max_depth=max_depth)["fingerprint"]


def describe_code(func: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """`{"fingerprint": digest, "functions": {name: digest}}` for `func` and everything it reaches.

    Names are identities, "path/in/project.py:qualname" for functions and classes and "path.py:NAME" for
    module-level constants (numbers, strings, bytes and tuples/frozensets of them) the code reads, so a caller
    can say what changed, and so that the digest does not depend on the name a module was imported under
    (`__main__` for a script, `flows.x` for `dbnd run`).
    """
    root = unwrap(func)
    if not (inspect.isfunction(root) or inspect.isclass(root)):
        if callable(root) and inspect.isclass(type(root)):
            root = type(root)  # a callable instance: its class holds the code
        else:
            raise TypeError(f"cannot fingerprint the code of {root!r}: expected a function, class or task")
    collector = _Collector(max_depth)
    collector.visit(root, 0)
    h = xxhash.xxh3_128()
    for name in sorted(collector.entries):
        h.update(f"{name}\0{collector.entries[name]}\n".encode("utf-8", "surrogatepass"))
    return {"fingerprint": h.hexdigest(), "functions": dict(sorted(collector.entries.items()))}


def unwrap(obj: Any) -> Any:
    """The plain function behind decorators, Prefect tasks/flows (`.fn`), dbnd tasks, methods and partials."""
    for _ in range(32):  # decorator chains are short; the bound guards against self-referencing wrappers
        if inspect.isclass(obj):
            return obj
        if isinstance(obj, functools.partial):
            nxt = obj.func
        elif isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            nxt = obj.__func__
        elif isinstance(obj, property):
            nxt = obj.fget
        elif _is_code_holder(getattr(obj, "__dbnd_fn__", None)):
            nxt = obj.__dbnd_fn__
        elif not inspect.isfunction(obj) and _is_code_holder(getattr(obj, "fn", None)):
            nxt = obj.fn
        elif _is_code_holder(obj.__dict__.get("__wrapped__") if hasattr(obj, "__dict__") else None):
            nxt = obj.__wrapped__
        else:
            return obj
        if nxt is obj or nxt is None:
            return obj
        obj = nxt
    return obj


def _is_code_holder(obj: Any) -> bool:
    return obj is not None and (callable(obj) or isinstance(obj, (staticmethod, classmethod)))


# --- what counts as project code ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("purelib", "platlib", "stdlib", "platstdlib") if paths.get(key)}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # some embedded/virtualenv `site` modules lack these
        pass
    return tuple(sorted({os.path.join(os.path.realpath(r), "") for r in roots}))


@functools.lru_cache(maxsize=4096)
def _is_library_file(path: str) -> bool:
    if path.startswith("<frozen"):
        return True
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    return "site-packages" in parts or "dist-packages" in parts or real.startswith(_library_roots())


def is_project_code(obj: Any) -> bool:
    """True for functions and classes of the user's project; False for stdlib, installed packages, prefect, us."""
    module_name = getattr(obj, "__module__", None)
    if isinstance(module_name, str):
        root = module_name.split(".", 1)[0]
        if root in _EXCLUDED_PACKAGES or root in sys.builtin_module_names:
            return False
        module_file = getattr(sys.modules.get(module_name), "__file__", None)
        if module_file:
            return not _is_library_file(module_file)
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):  # exec'd code, notebooks: decide by where the code says it came from
        return not _is_library_file(code.co_filename)
    return module_name == "__main__"


# --- the walk -------------------------------------------------------------------------------------------------


class _Collector:
    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.entries: dict[str, str] = {}
        self._seen: set[int] = set()
        self._alive: list[Any] = []  # keeps visited objects alive so their ids stay unique during the walk

    def visit(self, obj: Any, depth: int) -> None:
        if id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        self._alive.append(obj)
        if inspect.isclass(obj):
            self._record(_qualified_name(obj), _class_digest(obj))
            if depth < self.max_depth:
                self._follow_class(obj, depth)
        elif inspect.isfunction(obj):
            self._record(_qualified_name(obj), _function_digest(obj))
            if depth < self.max_depth:
                for target in _references(obj, self):
                    self.visit(target, depth + 1)

    def _follow_class(self, cls: type, depth: int) -> None:
        for base in cls.__bases__:
            if is_project_code(base):
                self.visit(base, depth + 1)
        for member in vars(cls).values():
            target = unwrap(member)
            if inspect.isfunction(target) and target.__qualname__.startswith(cls.__qualname__ + "."):
                self._seen.add(id(target))  # its source is part of the class source: follow only its references
                self._alive.append(target)
                for ref in _references(target, self):
                    self.visit(ref, depth + 1)
            elif (inspect.isfunction(target) or inspect.isclass(target)) and is_project_code(target):
                self.visit(target, depth + 1)  # defined elsewhere and attached to the class

    def record_constant(self, source: str, name: str, value: Any) -> None:
        self._record(f"{source}:{name}", fingerprint_value(value))

    def _record(self, name: str, digest: str) -> None:
        key, n = name, 1
        while key in self.entries and self.entries[key] != digest:  # same name, other object (closures in a loop)
            n += 1
            key = f"{name}#{n}"
        self.entries[key] = digest


def _qualified_name(obj: Any) -> str:
    """Project code by its identity (`path.py:qualname`); library code (a base class) by `module.qualname`."""
    if is_project_code(obj):
        return identity_of(obj)
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _references(fn: types.FunctionType, collector: _Collector) -> list[Any]:
    """Project functions/classes `fn` may call; project constants it reads are recorded on the way."""
    names = _code_names(fn.__code__)
    found: list[Any] = []
    candidates: list[Any] = []
    source = source_of(fn)
    for name in names:
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if _is_constant(value):
                collector.record_constant(source, name, value)
            else:
                candidates.append(value)
    for cell in fn.__closure__ or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:  # an empty cell: the variable is not bound yet
            pass
    candidates.extend(fn.__defaults__ or ())
    candidates.extend((fn.__kwdefaults__ or {}).values())
    seen_modules: set[str] = set()
    while candidates:
        value = candidates.pop()
        if isinstance(value, types.ModuleType):
            # `helpers.clean(...)`, `pkg.sub.f(...)`: the attribute names are among the code's names too
            if value.__name__ in seen_modules or not _is_project_module(value):
                continue
            seen_modules.add(value.__name__)
            for name in names:
                if name in vars(value):
                    attr = vars(value)[name]
                    if _is_constant(attr):
                        collector.record_constant(module_source(value), name, attr)
                    else:
                        candidates.append(attr)
            continue
        try:
            target = unwrap(value)
        except Exception:  # exotic objects whose attribute access raises are simply not followed
            continue
        if (inspect.isfunction(target) or inspect.isclass(target)) and is_project_code(target):
            found.append(target)
    return found


def _is_project_module(module: types.ModuleType) -> bool:
    root = module.__name__.split(".", 1)[0]
    if root in _EXCLUDED_PACKAGES:
        return False
    module_file = getattr(module, "__file__", None)
    return bool(module_file) and not _is_library_file(module_file)


def _is_constant(value: Any) -> bool:
    if isinstance(value, _CONSTANT_TYPES):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(v) for v in value)
    return False


# --- digests of one function or class -------------------------------------------------------------------------


def _function_digest(fn: types.FunctionType) -> str:
    try:
        return xxhash.xxh3_128_hexdigest(b"src\0" + inspect.getsource(fn).encode("utf-8", "surrogatepass"))
    except (OSError, TypeError):  # no source file (exec, some notebooks): digest the compiled code instead
        h = xxhash.xxh3_128(b"code\0")
        _feed_code(h, fn.__code__)
        return h.hexdigest()


def _class_digest(cls: type) -> str:
    try:
        return xxhash.xxh3_128_hexdigest(b"src\0" + inspect.getsource(cls).encode("utf-8", "surrogatepass"))
    except (OSError, TypeError):
        h = xxhash.xxh3_128(b"class\0")
        h.update(f"{cls.__qualname__}({','.join(_qualified_name(b) for b in cls.__bases__)})".encode())
        for name, member in sorted(vars(cls).items()):
            target = unwrap(member)
            h.update(f"\0{name}\0".encode())
            if inspect.isfunction(target):
                _feed_code(h, target.__code__)
            elif _is_constant(target):
                h.update(fingerprint_value(target).encode())
        return h.hexdigest()


def _feed_code(h: Any, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            h.update(b"\0code")
            _feed_code(h, const)
        else:
            h.update(fingerprint_value(const).encode())  # frozenset constants: order-independent
