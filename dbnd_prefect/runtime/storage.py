"""Choosing where a run keeps its data: a data root path or URI, or a saved Prefect storage block.

The data root is a local path, a URI (s3://, gs://, az://, memory://...) or the saved block that
`run.storage_block` names, loaded once per run through the run's Prefect API. Credentials come from the
standard environment variables, or from the block, registered with the targets' file systems.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

from dbnd_prefect import layout, prefect_internals
from dbnd_prefect.errors import ConfigError
from dbnd_prefect.redaction import redact
from dbnd_prefect.targets import normalize_uri, split_uri
from dbnd_prefect.versioning.records import RunStorage

if TYPE_CHECKING:
    from dbnd_prefect.config.settings import RunSettings


@functools.lru_cache(maxsize=1)
def _cloud_options_registered() -> bool:
    from dbnd_prefect.targets.credentials import register_cloud_options

    register_cloud_options()
    return True


def resolve_storage(settings: "RunSettings", connect: Callable[[], object]) -> RunStorage:
    """The storage of a run with `settings`: from a saved block when one is named (`connect()` first points this
    process at the run's Prefect API, which the block is loaded from), else from the data root URI."""
    _cloud_options_registered()
    if settings.storage_block:
        connect()
        return _from_block(settings.storage_block)
    return RunStorage(normalize_uri(settings.data_root), f"{layout.RECORDS_DIR}/")


def data_root_of(settings: "RunSettings", connect: Callable[[], object]) -> str:
    """The data root a run with `settings` uses; a plain path or URI without touching Prefect."""
    if settings.storage_block:
        return resolve_storage(settings, connect).data_root
    return normalize_uri(settings.data_root)


def _from_block(slug: str) -> RunStorage:
    from prefect.blocks.core import Block

    from dbnd_prefect.runtime.storage_blocks import register_block_options

    if "/" not in slug:
        raise ConfigError(f"run.storage_block '{slug}' is not a block slug",
                          hint="write it as BLOCK-TYPE/NAME, e.g. s3-bucket/my-data (see `prefect block ls`)")
    try:  # once per run: a slug given to Prefect would be looked up on every task run
        block = prefect_internals.sync(Block.load, slug)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"storage block '{slug}' could not be loaded: {redact(str(exc))}",
                          hint="check the name with `prefect block ls`; install its integration "
                               "(pip install 'dbnd-prefect[aws]', [gcp] or [azure])") from None
    base = normalize_uri(register_block_options(block))
    if split_uri(base)[0] == "file":
        # A local block's records go where a path root's do ({base}/.dbnd), through the RecordStore:
        # LocalFileSystem writes a record in place (a kill mid-write leaves it half written) and
        # resolves the whole path on every record it reads or writes.
        return RunStorage(base, f"{layout.RECORDS_DIR}/")
    return RunStorage(base, f"{layout.RECORDS_DIR}/", in_block=slug)


__all__ = ["resolve_storage", "data_root_of"]
