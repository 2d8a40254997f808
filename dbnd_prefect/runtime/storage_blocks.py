"""Saved Prefect storage blocks -> a data root and fsspec storage options.

S3Bucket (AwsCredentials or MinIOCredentials), GcsBucket (GcpCredentials), AzureBlobStorageContainer
(AzureBlobStorageCredentials), LocalFileSystem and RemoteFileSystem. Blocks are recognised by class name (no
cloud SDK is imported); secret values read from them are remembered for `dbnd_prefect.redaction.redact`.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from dbnd_prefect import prefect_internals
from dbnd_prefect.errors import ConfigError
from dbnd_prefect.redaction import one_line, remember_secret
from dbnd_prefect.targets.credentials import gcs_emulator_endpoint



def storage_options_from_block(block: Any) -> tuple[str, str, dict[str, Any]]:
    """(protocol, base URI, fsspec options) for a loaded Prefect storage block.

    Supported: S3Bucket (AwsCredentials or MinIOCredentials), GcsBucket (GcpCredentials),
    AzureBlobStorageContainer (AzureBlobStorageCredentials), LocalFileSystem, RemoteFileSystem.
    """
    kinds = {cls.__name__ for cls in type(block).__mro__}
    for kind, convert in _BLOCK_CONVERTERS.items():
        if kind in kinds:
            return convert(block)
    raise ConfigError(
        f"storage block of type '{type(block).__name__}' cannot be used as data storage",
        hint="use an S3Bucket, GcsBucket, AzureBlobStorageContainer, LocalFileSystem or RemoteFileSystem block",
    )


def load_block_storage(slug: str) -> tuple[str, str, dict[str, Any]]:
    """Load a saved block by slug ('s3-bucket/my-data') and return `storage_options_from_block` of it."""
    from prefect.blocks.core import Block

    if "/" not in slug:
        raise ConfigError(
            f"storage block '{slug}' is not a block slug",
            hint="write it as BLOCK-TYPE/NAME, e.g. s3-bucket/my-data (see `prefect block ls`)",
        )
    try:
        block = prefect_internals.sync(Block.load, slug)  # also from a thread with a running event loop
    except (ValueError, KeyError) as exc:
        raise ConfigError(
            f"storage block '{slug}' could not be loaded: {one_line(exc)}",
            hint="check the name with `prefect block ls` and install the block's integration "
                 "(prefect-aws, prefect-gcp or prefect-azure)",
        ) from None
    return storage_options_from_block(block)


def register_block_options(block: Any) -> str:
    """Use a block's credentials for every URI of its protocol; return the block's base URI."""
    from dbnd_prefect.targets.filesystem import register_storage_options

    protocol, base_uri, options = storage_options_from_block(block)
    if protocol != "file":
        register_storage_options(protocol, options, source=f"the Prefect block '{block_slug(block)}'")
    return base_uri


def block_slug(block: Any) -> str:
    """'block-type/name' of a saved block (just the type's slug for an unsaved one)."""
    type_slug = block.get_block_type_slug() if hasattr(block, "get_block_type_slug") else type(block).__name__
    name = getattr(block, "_block_document_name", None)
    return f"{type_slug}/{name}" if name else type_slug


def _join(protocol: str, bucket: str, folder: str | None) -> str:
    folder = (folder or "").strip("/")
    return f"{protocol}://{bucket}/{folder}" if folder else f"{protocol}://{bucket}"


def _secret(value: Any) -> Any:
    """The plain value of a pydantic SecretStr/SecretDict (remembered for redaction), or `value` itself."""
    if value is None:
        return None
    plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    remember_secret(plain)
    return plain


def _s3_bucket(block: Any) -> tuple[str, str, dict[str, Any]]:
    creds = block.credentials
    kinds = {cls.__name__ for cls in type(creds).__mro__}
    options: dict[str, Any] = {}
    client_kwargs: dict[str, Any] = {}
    if "MinIOCredentials" in kinds:
        options["key"] = creds.minio_root_user
        options["secret"] = _secret(creds.minio_root_password)
    else:
        if getattr(creds, "assume_role_arn", None):
            raise ConfigError(
                f"S3Bucket '{block.bucket_name}': AwsCredentials with assume_role_arn are not supported "
                "for data targets",
                hint="configure the role in an AWS profile (role_arn, source_profile) and set profile_name",
            )
        options["key"] = creds.aws_access_key_id
        options["secret"] = _secret(creds.aws_secret_access_key)
        options["token"] = _secret(creds.aws_session_token)
        options["profile"] = creds.profile_name
    if creds.region_name:
        client_kwargs["region_name"] = creds.region_name
    params = creds.aws_client_parameters
    if params.endpoint_url:
        options["endpoint_url"] = params.endpoint_url
    if not params.use_ssl:
        options["use_ssl"] = False
    if params.verify is False:
        client_kwargs["verify"] = False
    elif params.verify_cert_path:
        client_kwargs["verify"] = str(params.verify_cert_path)
    if params.config:
        options["config_kwargs"] = dict(params.config)
    if client_kwargs:
        options["client_kwargs"] = client_kwargs
    options = {k: v for k, v in options.items() if v is not None}
    return "s3", _join("s3", block.bucket_name, block.bucket_folder), options


def _gcs_bucket(block: Any) -> tuple[str, str, dict[str, Any]]:
    creds = block.gcp_credentials
    options: dict[str, Any] = {}
    endpoint = gcs_emulator_endpoint()
    if endpoint:
        options.update(endpoint_url=endpoint, token="anon")
    elif creds.service_account_info is not None:
        options["token"] = dict(_secret(creds.service_account_info))
    elif creds.service_account_file is not None:
        options["token"] = str(creds.service_account_file)
    else:
        options["token"] = "google_default"
    if creds.project:
        options["project"] = creds.project
    return "gs", _join("gs", block.bucket, block.bucket_folder), options


def _azure_container(block: Any) -> tuple[str, str, dict[str, Any]]:
    creds = block.credentials
    options: dict[str, Any] = {}
    if creds.connection_string is not None:
        options["connection_string"] = _secret(creds.connection_string)
    elif creds.account_url:
        host = urlsplit(creds.account_url).hostname or ""
        path_name = urlsplit(creds.account_url).path.strip("/")
        if host.endswith(".core.windows.net"):
            options["account_name"] = host.split(".", 1)[0]
        else:  # a custom host with the account in the path (an emulator or private endpoint)
            options["account_name"] = path_name
            options["account_host"] = urlsplit(creds.account_url).netloc
        if creds.client_id and creds.tenant_id and creds.client_secret is not None:
            options.update(
                client_id=creds.client_id, tenant_id=creds.tenant_id, client_secret=_secret(creds.client_secret)
            )
        # otherwise adlfs falls back to DefaultAzureCredential, as the block does
    return "az", _join("az", block.container_name, block.base_folder), options


def _local_filesystem(block: Any) -> tuple[str, str, dict[str, Any]]:
    base = os.path.abspath(os.path.expanduser(block.basepath)) if block.basepath else os.getcwd()
    return "file", base, {}


def _remote_filesystem(block: Any) -> tuple[str, str, dict[str, Any]]:
    basepath = block.basepath.rstrip("/")
    protocol = basepath.split("://", 1)[0] if "://" in basepath else "file"
    settings = dict(block.settings or {})
    for key, value in settings.items():
        settings[key] = _secret(value) if hasattr(value, "get_secret_value") else value
    return protocol, basepath, settings


_BLOCK_CONVERTERS = {
    "S3Bucket": _s3_bucket,
    "GcsBucket": _gcs_bucket,
    "AzureBlobStorageContainer": _azure_container,
    "LocalFileSystem": _local_filesystem,
    "RemoteFileSystem": _remote_filesystem,
}

__all__ = ["block_slug", "load_block_storage", "register_block_options", "storage_options_from_block"]
