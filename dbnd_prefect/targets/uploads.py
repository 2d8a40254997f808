"""Content-addressed copies under a data root: local files and in-memory values that a remote run must read.

    {root}/inputs/{xxh3 of the content}/{file name}      a local input file, uploaded once
    {root}/inputs/{xxh3 of the pickle}/value.pickle      a value passed to a task that runs elsewhere

The digest is of the content, so an unchanged file is uploaded once and keeps its URI (and the runs'
signatures).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from dbnd_prefect.targets.filesystem import filesystem_for_uri

INPUTS_DIR = "inputs"  # under the data root: uploaded inputs, by content digest


def upload_file(local: Path, data_root: str) -> str:
    """Copy `local` to `data_root/inputs/<xxh3 of its content>/<its name>` (once); the URI."""
    import xxhash

    digest = xxhash.xxh3_128()
    with local.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    uri = f"{data_root.rstrip('/')}/{INPUTS_DIR}/{digest.hexdigest()}/{local.name}"
    fs, path = filesystem_for_uri(uri)
    if not fs.exists(path):
        fs.put_file(str(local), path)
    return uri


def store_value(data_root: str, value: Any) -> str:
    """Pickle `value` to `{data_root}/inputs/<xxh3 of the pickle>/value.pickle` (once); its URI."""
    import xxhash

    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    uri = f"{data_root.rstrip('/')}/{INPUTS_DIR}/{xxhash.xxh3_128_hexdigest(payload)}/value.pickle"
    fs, path = filesystem_for_uri(uri)
    if not fs.exists(path):
        fs.makedirs(fs._parent(path), exist_ok=True)
        fs.pipe_file(path, payload)
    return uri


def load_value(uri: str) -> Any:
    """The value `store_value` stored at `uri`."""
    fs, path = filesystem_for_uri(uri)
    return pickle.loads(fs.cat_file(path))


__all__ = ["INPUTS_DIR", "upload_file", "store_value", "load_value"]
