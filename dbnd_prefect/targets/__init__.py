"""Data targets: URIs as fsspec file systems, file formats, and `Target` (load / atomic save).

Knows nothing of Prefect; imports no pandas, pyarrow or cloud SDK until a file is read or written.
"""

from dbnd_prefect.targets.filesystem import (
    clear_filesystem_cache,
    get_filesystem,
    normalize_uri,
    register_storage_options,
    split_uri,
)
from dbnd_prefect.targets.formats import (
    Format,
    default_format_for,
    format_for_uri,
    get_format,
    register_format,
    type_key,
)
from dbnd_prefect.targets.target import Target
from dbnd_prefect.targets import builtin_formats  # noqa: F401,E402 - registers the built-in formats

__all__ = [
    "Format",
    "Target",
    "clear_filesystem_cache",
    "default_format_for",
    "format_for_uri",
    "get_filesystem",
    "get_format",
    "normalize_uri",
    "register_format",
    "register_storage_options",
    "split_uri",
    "type_key",
]
