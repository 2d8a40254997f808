"""Cloud credentials and endpoints from the standard environment variables -> fsspec storage options.

AWS_* (and AWS_ENDPOINT_URL), AZURE_STORAGE_CONNECTION_STRING and STORAGE_EMULATOR_HOST. Saved Prefect
storage blocks are the other source (runtime/storage_blocks.py). No cloud SDK is imported here.
"""

from __future__ import annotations

import functools
import os
from typing import Any


S3_PROTOCOLS = ("s3", "s3a")
GCS_PROTOCOLS = ("gs", "gcs")
AZURE_PROTOCOLS = ("az", "abfs", "abfss")
CLOUD_PROTOCOLS = S3_PROTOCOLS + GCS_PROTOCOLS + AZURE_PROTOCOLS



# --- environment ------------------------------------------------------------------------------------------


def storage_options_from_env(protocol: str) -> dict[str, Any]:
    """fsspec options for `protocol` taken from the standard environment variables ({} when none apply).

    s3fs and adlfs read these variables themselves too; returning the endpoint or connection string makes
    file systems built for different endpoints distinct.  gcsfs needs `token="anon"` to talk to an emulator.
    """
    if protocol in S3_PROTOCOLS:
        # botocore (and so s3fs) reads AWS_ENDPOINT_URL too; passed explicitly it also keys the cache.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        return {"endpoint_url": endpoint} if endpoint else {}
    if protocol in GCS_PROTOCOLS:
        endpoint = gcs_emulator_endpoint()
        # An emulator takes no credentials; without token="anon" gcsfs would look for Google ones.
        return {"endpoint_url": endpoint, "token": "anon"} if endpoint else {}
    if protocol in AZURE_PROTOCOLS:
        connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        return {"connection_string": connection_string} if connection_string else {}
    return {}


def gcs_emulator_endpoint() -> str | None:
    """The GCS emulator URL from STORAGE_EMULATOR_HOST, or None when talking to Google."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if host in ("", "default"):
        return None
    # gcsfs probes an emulator for hierarchical namespaces (~60 s per bucket) unless told not to at import.
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def register_cloud_options() -> None:
    """Register environment-derived options for every cloud protocol with the targets file system registry.

    Options are computed when a file system is built, so environment changes take effect after
    `clear_filesystem_cache()`.  Replaces options registered earlier for these protocols.
    """
    from dbnd_prefect.targets.filesystem import register_storage_options

    for protocol in CLOUD_PROTOCOLS:
        register_storage_options(protocol, functools.partial(storage_options_from_env, protocol))


__all__ = ["AZURE_PROTOCOLS", "CLOUD_PROTOCOLS", "GCS_PROTOCOLS", "S3_PROTOCOLS", "gcs_emulator_endpoint",
           "register_cloud_options", "storage_options_from_env"]
