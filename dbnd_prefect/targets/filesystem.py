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
from dbnd_prefect.redaction import one_line

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
# where each object store's client finds credentials and endpoint when no options say otherwise
_ENV_CREDENTIALS = {
    "aws": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for an "
           "S3-compatible store",
    "gcp": "GOOGLE_APPLICATION_CREDENTIALS (or `gcloud auth application-default login`), and "
           "STORAGE_EMULATOR_HOST for an emulator",
    "azure": "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY "
             "or AZURE_STORAGE_SAS_TOKEN",
}

_lock = threading.Lock()
_instances: dict[str, fsspec.AbstractFileSystem] = {}
_options: dict[str, StorageOptions] = {}
_sources: dict[str, str] = {}
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
    # the scheme may be a chain: simplecache::s3://user:secret@bucket/key
    text = re.sub(r"^((?:[a-zA-Z][\w+.-]*::)*[a-zA-Z][\w+.-]*://)[^/@]*@", r"\1***@", str(uri))
    return re.sub(r"\?.*$", "?...", text) if "?" in text and "://" in text else text


def register_storage_options(protocol: str, options: StorageOptions, source: str | None = None) -> None:
    """Set the options (or a callable returning them) used to build `protocol`'s file system.

    `source` says where they come from (e.g. "the Prefect block 's3-bucket/data'"), for error hints;
    without it, hints name the standard environment variables. Replaces earlier options (and source)
    for the protocol and drops its cached instances.
    """
    with _lock:
        _options[protocol] = options
        if source:
            _sources[protocol] = source
        else:
            _sources.pop(protocol, None)
        for key in [k for k in _instances if k.split("|", 1)[0] == protocol]:
            del _instances[key]


def credentials_source(protocol: str) -> str:
    """Where `protocol`'s credentials and endpoint come from, as a user can act on it."""
    source = _sources.get(protocol)
    if source:
        return source
    extra = _EXTRAS.get(protocol)
    if extra in _ENV_CREDENTIALS:
        return f"the environment: {_ENV_CREDENTIALS[extra]}"
    return f"the storage options registered for '{protocol}'"


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
            f"{type(exc).__name__}: {one_line(exc)}",
            hint=f"check the storage options and credentials: {credentials_source(protocol)}",
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
        detail = one_line(exc)
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
        f"cannot open '{shown}': the {protocol}:// backend is not installed ({one_line(exc)})",
        hint=install,
    )


# --- store failures a user fixes outside the data ----------------------------------------------------------

_BUCKET_WORDS = {"aws": "bucket", "gcp": "bucket", "azure": "container"}
_MISSING_BUCKET = re.compile(r"NoSuchBucket|bucket does not exist|ContainerNotFound|container does not exist", re.I)
_AUTH_NAMES = frozenset({
    "PermissionError", "ClientAuthenticationError", "RefreshError", "DefaultCredentialsError",
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "TokenRetrievalError",
})
_AUTH_TEXT = re.compile(
    r"AuthorizationFailure|AuthenticationFailed|AuthorizationPermissionMismatch|InvalidAccessKeyId|"
    r"SignatureDoesNotMatch|AccessDenied|InvalidToken|ExpiredToken|Unauthorized|Forbidden|invalid_grant|"
    r"Unable to locate credentials|failed to authenticate|token is either not valid",
    re.I,
)
_CONNECT_NAMES = frozenset({
    "EndpointConnectionError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError",
    "ClientConnectorError", "ClientConnectionError", "ServerDisconnectedError", "ServiceRequestError",
    "ConnectTimeoutError", "ConnectTimeout", "NewConnectionError", "MaxRetryError", "ProxyError",
})


def bucket_of(protocol: str, path: str) -> tuple[str, str] | None:
    """("bucket" or "container", its name) for a path on an object store, else None."""
    word = _BUCKET_WORDS.get(_EXTRAS.get(protocol, ""))
    name = path.lstrip("/").split("/", 1)[0]
    return (word, name) if word and name else None


def missing_bucket(protocol: str, path: str, exc: BaseException,
                   fs: fsspec.AbstractFileSystem | None = None) -> str | None:
    """The bucket/container name when `exc` (a not-found failure on `path`) means the bucket itself is missing.

    Decided from the backend's error text where it says so (S3, Azure), else by asking the store whether
    the bucket exists (not for S3: s3fs reports a bucket it may not probe as missing).
    """
    found = bucket_of(protocol, path)
    if found is None:
        return None
    chain = _chain(exc)
    if any(_MISSING_BUCKET.search(str(e)) for e in chain):
        return found[1]
    if fs is None or _EXTRAS.get(protocol) == "aws" or not any(isinstance(e, FileNotFoundError) for e in chain):
        return None
    try:
        return None if fs.exists(found[1]) else found[1]
    except Exception:  # cannot tell: report the object as missing
        return None


def describe_failure(protocol: str, path: str, exc: BaseException,
                     fs: fsspec.AbstractFileSystem | None = None) -> tuple[str, str] | None:
    """(reason, hint) when a store failure is not about the data: refused credentials, a missing bucket,
    an unreachable endpoint. None for anything else (the caller reports the backend's own error).

    The reason is redacted; the hint names where the credentials and endpoint come from.
    """
    if protocol in LOCAL_PROTOCOLS:
        return None
    chain = _chain(exc)
    where = credentials_source(protocol)
    bucket = missing_bucket(protocol, path, exc, fs)
    if bucket is not None:
        word = (bucket_of(protocol, path) or ("bucket", ""))[0]
        return (f"{word} '{bucket}' does not exist",
                f"create the {word} or correct its name; it was looked up with {where}")
    detail = f"{type(exc).__name__}: {one_line(exc, 200)}"
    if any(_is_auth(e) for e in chain):
        return (f"the store refused the credentials ({detail})",
                f"check the credentials for {protocol}:// in {where}; the data itself was not read")
    if any(type(e).__name__ in _CONNECT_NAMES for e in chain):
        return (f"cannot reach the store ({detail})",
                f"check that the storage endpoint is up and reachable; it comes from {where}")
    return None


def _is_auth(exc: BaseException) -> bool:
    if type(exc).__name__ in _AUTH_NAMES or getattr(exc, "status_code", None) in (401, 403):
        return True
    code = getattr(exc, "code", None)
    return code in (401, 403) or bool(_AUTH_TEXT.search(str(exc)))


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen) and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
