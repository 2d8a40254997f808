"""URIs to fsspec file systems: the one place where a URI becomes a file system.

A URI is a local path (relative, absolute, `~`, `file://`) or `protocol://...` for any protocol
fsspec knows (s3, gs/gcs, az/abfs/abfss, hdfs, memory, http(s), ...). File system instances are
cached per protocol and options; options come from a registry other modules plug into
(credentials from Prefect blocks, emulator endpoints, connection strings).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Union

from dbnd_prefect.errors import TargetError

if TYPE_CHECKING:
    import fsspec

StorageOptions = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]]]

LOCAL_PROTOCOLS = frozenset({"file", "local"})

# protocol -> the pip extra that installs its fsspec backend
_EXTRAS = {
    "s3": "aws", "s3a": "aws",
    "gs": "gcp", "gcs": "gcp",
    "az": "azure", "abfs": "azure", "abfss": "azure", "adl": "azure",
}
_PACKAGES = {"aws": "s3fs", "gcp": "gcsfs", "azure": "adlfs"}

_lock = threading.Lock()
_instances: dict[str, fsspec.AbstractFileSystem] = {}
_options: dict[str, StorageOptions] = {}
_abfss_registered = False


def split_uri(uri: str | os.PathLike) -> tuple[str, str]:
    """Return (protocol, path as the protocol's file system expects it) for a URI or local path."""
    import fsspec.core

    text = os.fspath(uri)
    protocol, rest = fsspec.core.split_protocol(text)
    if protocol is None or protocol in LOCAL_PROTOCOLS:
        return "file", os.path.abspath(os.path.expanduser(rest))
    try:
        cls = _filesystem_class(protocol)
    except (ImportError, ValueError):
        # backend not installed or unknown: strip as fsspec's base class would
        if protocol in ("http", "https"):
            return protocol, text
        return protocol, rest.rstrip("/")
    return protocol, cls._strip_protocol(text)


def normalize_uri(uri: str | os.PathLike) -> str:
    """Return the canonical spelling of a URI: absolute local path, remote URIs unchanged."""
    protocol, path = split_uri(uri)
    return path if protocol == "file" else os.fspath(uri)


def is_local(uri: str | os.PathLike) -> bool:
    """Whether a URI names a file on the local file system."""
    return split_uri(uri)[0] == "file"


def redact_uri(uri: str) -> str:
    """A URI safe to show in messages: no password in user info, no query string values."""
    text = re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1***@", str(uri))
    return re.sub(r"\?.*$", "?...", text) if "?" in text and "://" in text else text


def register_storage_options(protocol: str, options: StorageOptions) -> None:
    """Set the options (or a callable returning them) used to build `protocol`'s file system.

    Replaces earlier options for the protocol and drops its cached instances.
    """
    with _lock:
        _options[protocol] = options
        for key in [k for k in _instances if k.split("|", 1)[0] == protocol]:
            del _instances[key]


def storage_options(protocol: str) -> dict[str, Any]:
    """The options registered for a protocol (callables are called now)."""
    opts = _options.get(protocol)
    if callable(opts):
        opts = opts()
    return dict(opts or {})


def clear_filesystem_cache() -> None:
    """Forget every cached file system instance (options stay registered)."""
    with _lock:
        _instances.clear()


def get_filesystem(
    protocol: str, *, uri: str | None = None, extra_options: Mapping[str, Any] | None = None
) -> fsspec.AbstractFileSystem:
    """Return the cached file system for a protocol, built with its registered options.

    `extra_options` (e.g. the HDFS name node taken from a URI) are merged over the registered ones.
    `uri` only serves to name the culprit in errors.
    """
    from fsspec.utils import tokenize

    protocol = "file" if protocol in LOCAL_PROTOCOLS else protocol
    options = {**storage_options(protocol), **(extra_options or {})}
    key = f"{protocol}|{tokenize(sorted(options.items(), key=lambda kv: kv[0]))}"
    with _lock:
        fs = _instances.get(key)
    if fs is not None:
        return fs
    fs = _create(protocol, options, uri or f"{protocol}://")
    with _lock:
        return _instances.setdefault(key, fs)


def filesystem_for_uri(uri: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return (file system, path within it) for a URI."""
    protocol, path = split_uri(uri)
    extra: dict[str, Any] = {}
    if protocol not in ("file", "memory"):
        try:
            extra = _filesystem_class(protocol)._get_kwargs_from_urls(os.fspath(uri))
        except (ImportError, ValueError):
            extra = {}  # reported by get_filesystem below
    return get_filesystem(protocol, uri=os.fspath(uri), extra_options=extra), path


def _filesystem_class(protocol: str) -> type:
    import fsspec

    _register_abfss()
    return fsspec.get_filesystem_class(protocol)


def _register_abfss() -> None:
    # adlfs serves abfss:// but fsspec's registry only lists abfs/az/adl
    global _abfss_registered
    if _abfss_registered:
        return
    from fsspec.registry import known_implementations, register_implementation

    if "abfss" not in known_implementations:
        register_implementation(
            "abfss",
            "adlfs.AzureBlobFileSystem",
            errtxt="Install adlfs to access Azure Datalake Gen2 and Azure Blob Storage",
        )
    _abfss_registered = True


def _create(protocol: str, options: dict[str, Any], uri: str) -> fsspec.AbstractFileSystem:
    shown = redact_uri(uri)
    try:
        cls = _filesystem_class(protocol)
    except ValueError:
        raise TargetError(
            f"cannot open '{shown}': unknown storage protocol '{protocol}://'",
            hint="use a local path or a URI such as s3://, gs://, az://, abfs://, hdfs://, memory://, https://",
        ) from None
    except ImportError as exc:
        raise _missing_backend(protocol, shown, exc) from None
    if protocol == "hdfs":
        return _create_hdfs(cls, options, shown)
    try:
        return cls(skip_instance_cache=True, **options)
    except ImportError as exc:
        raise _missing_backend(protocol, shown, exc) from None
    except Exception as exc:  # a backend rejecting its options or credentials
        raise TargetError(
            f"cannot open '{shown}': the {protocol}:// file system could not be created: "
            f"{type(exc).__name__}: {_one_line(exc)}",
            hint=f"check the storage options or credentials registered for '{protocol}'",
        ) from None


def _create_hdfs(cls: type, options: dict[str, Any], shown: str) -> fsspec.AbstractFileSystem:
    needs = (
        "HDFS needs Java (JAVA_HOME), Hadoop's native libhdfs (HADOOP_HOME or ARROW_LIBHDFS_DIR) "
        "and the Hadoop jars on CLASSPATH (export CLASSPATH=$($HADOOP_HOME/bin/hadoop classpath --glob))"
    )
    missing = [name for name in ("HADOOP_HOME", "CLASSPATH") if not os.environ.get(name)]
    try:
        return cls(skip_instance_cache=True, **options)
    except (OSError, ImportError, RuntimeError) as exc:
        detail = _one_line(exc)
        if "libjvm" in detail:
            cause = "Java's libjvm could not be loaded"
        elif "libhdfs" in detail:
            cause = "libhdfs could not be loaded"
        else:
            cause = f"{type(exc).__name__}: {detail[:200]}"
        unset = f"; not set: {', '.join(missing)}" if missing else ""
        raise TargetError(
            f"cannot open '{shown}': libhdfs / Hadoop is not available ({cause}{unset})",
            hint=needs,
        ) from None


def _missing_backend(protocol: str, shown: str, exc: BaseException) -> TargetError:
    extra = _EXTRAS.get(protocol)
    if extra:
        install = f"pip install 'dbnd-prefect[{extra}]', or just pip install {_PACKAGES[extra]}"
    elif protocol in ("http", "https"):
        install = "pip install 'fsspec[http]'"
    else:
        install = "install the fsspec implementation for this protocol"
    return TargetError(
        f"cannot open '{shown}': the {protocol}:// backend is not installed ({_one_line(exc)})",
        hint=install,
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + "..." if len(text) > 300 else text
