"""File formats: the one place where a format becomes a reader and a writer.

A `Format` reads a type from an open file and writes an object to one; formats are found by
name or by a URI's extension (after an optional compression suffix such as `.gz`). Types are
named by string keys ("pandas.DataFrame", "dict", ...) so that nothing here imports pandas,
pyarrow or numpy until a file is actually read or written. Files are plain: pandas, pyarrow,
numpy or `json` read them without this library.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from dbnd_prefect import plugins
from dbnd_prefect.errors import FormatError
from dbnd_prefect.targets.filesystem import redact_uri

ANY = "object"
DATAFRAME = "pandas.DataFrame"
SERIES = "pandas.Series"
NDARRAY = "numpy.ndarray"

# fully qualified class name (or common spelling) -> type key
_TYPE_KEYS: dict[str, str] = {
    "pandas.DataFrame": DATAFRAME, "pandas.core.frame.DataFrame": DATAFRAME,
    "pd.DataFrame": DATAFRAME, "DataFrame": DATAFRAME,
    "pandas.Series": SERIES, "pandas.core.series.Series": SERIES, "pd.Series": SERIES, "Series": SERIES,
    "numpy.ndarray": NDARRAY, "np.ndarray": NDARRAY, "ndarray": NDARRAY,
    "builtins.dict": "dict", "dict": "dict",
    "builtins.list": "list", "list": "list",
    "builtins.str": "str", "str": "str",
    "builtins.bytes": "bytes", "bytes": "bytes",
    "builtins.bool": "bool", "bool": "bool", "builtins.int": "int", "int": "int",
    "builtins.float": "float", "float": "float", "builtins.tuple": "tuple", "tuple": "tuple",
    "builtins.object": ANY, "object": ANY,
}


@dataclass(frozen=True)
class Format:
    """A named file format: how to load some types from a file and save some types to one.

    `load_fn(fileobj, type_key, **options)` and `save_fn(obj, fileobj, **options)` get a file
    object already decompressed, binary or text (utf-8) as `binary` says. `load_types[0]` is
    what a load with no requested type returns; "object" in a tuple means any type.
    """

    name: str
    extensions: tuple[str, ...]
    load_fn: Callable[..., Any]
    save_fn: Callable[..., None]
    binary: bool = True
    load_types: tuple[str, ...] = (ANY,)
    save_types: tuple[str, ...] = (ANY,)

    def can_load(self, type_key: str | None) -> bool:
        """Whether this format can produce the given type."""
        return type_key in (None, ANY) or type_key in self.load_types or ANY in self.load_types \
            or self.name in _engine_formats(type_key)

    def can_save(self, type_key: str) -> bool:
        """Whether this format can store an object of the given type."""
        return type_key in self.save_types or ANY in self.save_types or self.name in _engine_formats(type_key)

    def load(self, fileobj: IO, type_key: str | None = None, **options: Any) -> Any:
        """Read an object of `type_key` (default: this format's natural type) from `fileobj`."""
        if not self.can_load(type_key):
            raise FormatError(
                f"format '{self.name}' cannot load {type_key}",
                hint=f"it loads {', '.join(self.load_types)}",
            )
        wanted = self.load_types[0] if type_key in (None, ANY) else type_key
        return self.load_fn(fileobj, wanted, **options)

    def save(self, obj: Any, fileobj: IO, **options: Any) -> None:
        """Write `obj` to `fileobj`."""
        key = type_key(type(obj))
        if not self.can_save(key):
            raise FormatError(
                f"format '{self.name}' cannot save {key}",
                hint=f"it saves {', '.join(self.save_types)}",
            )
        self.save_fn(obj, fileobj, **options)


_formats: dict[str, Format] = {}
_by_extension: dict[str, str] = {}



def _engine_formats(type_key: str | None) -> tuple[str, ...]:
    """The file formats an engine's frame type (Spark, from the plugin registry) reads and writes itself."""
    found = plugins.frame_type(type_key)
    return found.formats if found is not None else ()


def engine_io(type_key: str | None) -> Any:
    """The io of the engine that reads and writes values of `type_key` itself from and to URIs (a folder of part
    files for Spark), imported now; None for types that formats read and write through file objects."""
    return plugins.frame_io(type_key) if plugins.frame_type(type_key) is not None else None


def engine_values_stored(values: dict[str, Any], infos: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`values` with each engine frame (Spark) replaced by a read of its stored output, so that the tasks
    downstream read what was written instead of computing the frame's plan again."""
    out = dict(values)
    for name, value in values.items():
        key = type_key(type(value))
        if name in infos and plugins.frame_type(key) is not None:
            out[name] = engine_io(key).handed_on(value, infos[name])
    return out


def engine_value_for(wanted: str, value: Any) -> Any:
    """`value`, converted when it is an engine's frame (Spark) given to a parameter of a plain type (pandas)."""
    key = type_key(type(value))
    if key == wanted or plugins.frame_type(key) is None or wanted != DATAFRAME:
        return value
    return engine_io(key).to_pandas(value)


def register_format(fmt: Format) -> None:
    """Add a format (or replace the one with the same name); its extensions now resolve to it."""
    name = fmt.name.lower()
    old = _formats.get(name)
    if old is not None:
        for ext in old.extensions:
            _by_extension.pop(_dotted(ext), None)
    _formats[name] = fmt
    for ext in fmt.extensions:
        _by_extension[_dotted(ext)] = name


def _dotted(ext: str) -> str:
    return ext.lower() if ext.startswith(".") else f".{ext.lower()}"


def get_format(name: str) -> Format:
    """The format registered under `name` (no compression suffix: see `resolve_format`)."""
    try:
        return _formats[name.lower()]
    except KeyError:
        raise _unknown_format(name) from None


def resolve_format(spec: str) -> tuple[Format, str | None]:
    """(format, fsspec compression or None) for a format name, optionally compressed: "csv", "pickle.gz".

    An extension works as a name ("pkl.gz"); anything else is a FormatError naming the closest known name.
    """
    text = spec.strip().lower().lstrip(".")
    stem, dot, last = text.rpartition(".")
    compression = compression_suffixes().get(f".{last}") if dot else None
    name = stem if compression else text
    fmt = _formats.get(name) or (_formats.get(_by_extension.get(f".{name}", "")) if name else None)
    if fmt is None:
        raise _unknown_format(spec)
    return fmt, compression


def format_file_extension(spec: str) -> str:
    """The file name ending of an output written in `spec`: ".csv", ".pkl.gz"."""
    fmt, compression = resolve_format(spec)
    suffix = next((ext for ext, name in compression_suffixes().items() if name == compression), "")
    return fmt.extensions[0] + suffix


def _unknown_format(name: str) -> FormatError:
    import difflib

    compressed = [f"{n}{ext}" for n in _formats for ext in (".gz", ".bz2", ".xz")]
    close = difflib.get_close_matches(name.lower(), [*_formats, *compressed, *(e[1:] for e in _by_extension)], n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return FormatError(
        f"unknown format '{name}'",
        hint=f"{hint}known formats: {', '.join(sorted(_formats))}, optionally compressed "
        f"(e.g. 'csv.gz', 'pickle.bz2')",
    )


def known_extensions() -> list[str]:
    """Every file extension that maps to a format, sorted."""
    return sorted(_by_extension)


def compression_suffixes() -> dict[str, str]:
    """Compression suffix (".gz") -> fsspec compression name ("gzip") for codecs installed here."""
    from fsspec.utils import compressions

    return {f".{ext}": name for ext, name in compressions.items()}


# suffixes fsspec knows only when an optional package is installed
_OPTIONAL_CODECS = {".zst": "zstandard", ".lz4": "lz4"}


def compression_for_uri(uri: str | os.PathLike) -> str | None:
    """fsspec compression name ("gzip", "bz2", ...) from a URI's last suffix, or None."""
    last = _basename(os.fspath(uri)).lower().rpartition(".")[2]
    return compression_suffixes().get(f".{last}")


def format_for_uri(uri: str | os.PathLike, forced: str | None = None) -> tuple[Format, str | None]:
    """Return (format, fsspec compression name or None) for a URI; `forced` overrides the extension."""
    name = _basename(os.fspath(uri)).lower()
    stem, dot, last = name.rpartition(".")
    compression = compression_for_uri(uri)
    if compression:
        name = stem
    elif dot and f".{last}" in _OPTIONAL_CODECS and forced is None and _lookup(stem):
        raise FormatError(
            f"cannot read or write '{redact_uri(os.fspath(uri))}': the .{last} compression codec is not installed",
            hint=f"pip install {_OPTIONAL_CODECS['.' + last]}",
        )
    if forced is not None:
        fmt, forced_compression = resolve_format(forced)
        return fmt, forced_compression or compression
    fmt = _lookup(name)
    if fmt is None:
        ext = ("." + name.rpartition(".")[2] if "." in name else "") + (f".{last}" if compression else "")
        ext = ext or "(none)"
        raise FormatError(
            f"cannot tell the format of '{redact_uri(os.fspath(uri))}' from its extension '{ext}'",
            hint=f"known extensions: {', '.join(known_extensions())} (optionally followed by "
            f"{', '.join(compression_suffixes())}); or force a format with format='NAME' "
            f"(one of {', '.join(sorted(_formats))})",
        )
    return fmt, compression


def default_format_for(type_key: str) -> str:
    """Name of the format an object of this type is saved in when nothing else is said."""
    engine = plugins.frame_type(type_key)
    if engine is not None:
        return engine.default_format
    return {
        DATAFRAME: "parquet", SERIES: "parquet", "str": "txt",
        "dict": "json", "list": "json", NDARRAY: "npy",
    }.get(type_key, "pickle")


def register_type_key(qualified_name: str, key: str) -> None:
    """Map a class (`module.QualName`) to a type key, for formats of types this module does not know."""
    _TYPE_KEYS[qualified_name] = key


def type_key(tp_or_obj: Any) -> str:
    """The type key of a type, a typing annotation, or an object.

    A string that is a known key or class name ("pandas.DataFrame", "dict") is taken as that key;
    any other string is a `str` object. `Optional[X]` gives X's key; unknown types give "object".
    """
    if isinstance(tp_or_obj, str):
        return _TYPE_KEYS.get(tp_or_obj) or _engine_key(tp_or_obj) or "str"
    tp = tp_or_obj
    if tp is None or tp is typing.Any:
        return ANY
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return type_key(typing.get_args(tp)[0])
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return type_key(args[0]) if len(args) == 1 else ANY
    if origin is not None:
        tp = origin
    cls = tp if isinstance(tp, type) else type(tp)
    for klass in cls.__mro__:
        name = f"{klass.__module__}.{klass.__qualname__}"
        key = _TYPE_KEYS.get(name) or _engine_key(name)
        if key is not None:
            return key
    return ANY


def _engine_key(class_name: str) -> str | None:
    """The type key of an engine's frame class (`pyspark.sql.dataframe.DataFrame`), by name; None otherwise."""
    found = plugins.frame_type_of_library(class_name.split(".", 1)[0])
    return found.key if found is not None and class_name in found.classes else None


def as_type_key(key_or_type: Any) -> str:
    """A requested type as a key: strings are keys (aliases resolved), anything else goes through type_key."""
    if isinstance(key_or_type, str):
        return _TYPE_KEYS.get(key_or_type) or _engine_key(key_or_type) or key_or_type
    return type_key(key_or_type)


def describe(obj: Any) -> dict[str, Any]:
    """Rows and schema of a DataFrame, Series or ndarray ({} for other objects)."""
    key = type_key(type(obj))
    if key == DATAFRAME:
        return {"rows": len(obj), "schema": {str(c): str(t) for c, t in obj.dtypes.items()}}
    if key == SERIES:
        return {"rows": len(obj), "schema": {series_name(obj): str(obj.dtype)}}
    if key == NDARRAY:
        rows = int(obj.shape[0]) if obj.ndim else 1
        return {"rows": rows, "schema": {"value": str(obj.dtype)}, "shape": list(obj.shape)}
    return {}


def _basename(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        uri = uri.split("?", 1)[0].split("#", 1)[0]
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _lookup(name: str) -> Format | None:
    # longest registered extension that ends the name, e.g. ".jsonl" before ".json"
    parts = name.split(".")
    for i in range(1, len(parts)):
        fmt_name = _by_extension.get("." + ".".join(parts[i:]))
        if fmt_name:
            return _formats[fmt_name]
    return None


def series_name(series: Any) -> str:
    return "value" if series.name is None else str(series.name)
