"""Spark DataFrames read and written by Spark itself: csv, tsv, json, parquet and orc files and folders.

A data input annotated `pyspark.sql.DataFrame` is read from its URI by the profile's Spark engine (a
file, a folder of part files, a Hive-partitioned folder); a folder written by Spark or Hadoop without
its `_SUCCESS` marker is refused as unfinished. A returned Spark DataFrame is written by Spark as a
folder (`result.parquet/`: part files plus `_SUCCESS`), staged next to its place and renamed into it,
so a failed job leaves nothing at the output's URI. Nothing is collected to the driver, except when a
pandas parameter is given a Spark frame: then it comes through Arrow, up to `to_pandas_max_rows` rows.

Local Spark has no connector for object stores (Hadoop's s3a/gcs/abfs jars are not installed with pyspark), so
with the `local` engine an object-store target goes through this machine's disk and fsspec: an output is
written by Spark to a local staging folder, then uploaded part by part with `_SUCCESS` last (the marker readers
wait for), and an input is downloaded to a local folder kept until the process ends. Other engines (Spark
Connect, Databricks) read and write the store themselves.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

from dbnd_prefect.errors import DbndError, FormatError, TargetError

if TYPE_CHECKING:
    from dbnd_prefect.targets.target import Target

# format name -> (Spark data source, default read options, default write options)
SCHEMA_FILE = "_schema.json"  # the Spark schema of a folder this library wrote (read back without inference)
_SOURCES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "csv": ("csv", {"header": True, "inferSchema": True}, {"header": True}),
    "tsv": ("csv", {"header": True, "inferSchema": True, "sep": "\t"}, {"header": True, "sep": "\t"}),
    "json": ("json", {}, {}),
    "jsonl": ("json", {}, {}),
    "parquet": ("parquet", {}, {}),
    "orc": ("orc", {}, {}),
}
SPARK_FORMATS = tuple(_SOURCES)
# fsspec compression name -> Spark's codec name (Spark reads compressed csv/json by their suffix)
_CODECS = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz", "zstd": "zstd", "lz4": "lz4"}


def spark_path(target: Target) -> str:
    """The URI as Spark's Hadoop file systems name it: local paths absolute, `s3://` as `s3a://`."""
    if target.is_local:
        return target.path
    uri = target.uri.rstrip("/")
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def _format_of(target: Target) -> tuple[str, str | None]:
    """(format name, fsspec compression) from the forced format, the URI's name, or the folder's part files."""
    from dbnd_prefect.targets.formats import format_for_uri

    uri = target.uri.rstrip("/")
    try:
        fmt, compression = format_for_uri(uri, target._forced)
    except FormatError:
        if not target.is_folder():
            raise
        fmt, compression = _parts_format(target)
    if fmt.name not in _SOURCES:
        raise FormatError(f"Spark does not read or write {fmt.name} ('{target.shown}')",
                          hint=f"Spark DataFrames use {', '.join(SPARK_FORMATS)}; force one with Data(format=...)")
    return fmt.name, compression


def _parts_format(target: Target) -> Any:
    from dbnd_prefect.targets.folder import is_meta_name, listing, part_format

    for relative in listing(target):
        if not is_meta_name(relative):
            return part_format(target, relative)
    raise TargetError(f"folder '{target.shown}' holds no data files",
                      hint="pass the path of a file, or of a folder of part files")


def load(target: Target, options: dict[str, Any]) -> Any:
    """A Spark DataFrame read by the active engine from `target` (a file or a folder); nothing is read yet."""
    from dbnd_prefect.spark.engine import active_settings, session_for
    from dbnd_prefect.spark.settings import LocalEngine, describe_engine
    from dbnd_prefect.targets.folder import MARKER_OPTION

    options = dict(options)
    require_marker = options.pop(MARKER_OPTION, None)
    env, settings = active_settings()
    name, _ = _format_of(target)
    if target.is_local and isinstance(settings, LocalEngine) and not os.path.exists(target.path):
        raise target._missing(None)
    schema = None
    if target.is_folder():
        schema = _check_finished(target, require_marker)
    source, read_defaults, _ = _SOURCES[name]
    try:
        session = session_for(env, settings)
    except DbndError as exc:  # the engine cannot start: say which input was being read
        raise type(exc)(f"cannot read '{target.shown}': {exc.message}", hint=exc.hint) from None
    try:
        reader = session.read.format(source)
        if schema is not None and "schema" not in options:
            from pyspark.sql.types import StructType

            reader = reader.schema(StructType.fromJson(schema))  # no inference: no Spark job to read a folder
            read_defaults = {k: v for k, v in read_defaults.items() if k != "inferSchema"}
        reader = reader.options(**{k: _option(v) for k, v in {**read_defaults, **options}.items()})
        return reader.load(_local_copy(target) if _through_disk(target, settings) else spark_path(target))
    except Exception as exc:
        raise TargetError(f"{describe_engine(env, settings)} cannot read '{target.shown}' as {name}: "
                          f"{_spark_message(exc)}",
                          hint="check the path, the format and the load options") from None


def _check_finished(target: Target, require_marker: bool | None) -> dict[str, Any] | None:
    """TargetError for a folder its writer has not finished (no `_SUCCESS`, a `_temporary/` left over);
    else the schema this library stored next to the parts (`_schema.json`), if any."""
    import json

    from dbnd_prefect.targets.folder import data_files, listing
    from dbnd_prefect.targets.target import Target as TargetClass

    folder = TargetClass(target.uri.rstrip("/") + "/", format=target._forced)
    files = listing(folder)
    if not files:
        raise target._missing(None)
    data_files(folder, files, require_marker)
    if SCHEMA_FILE not in files:
        return None
    try:
        with TargetClass(f"{folder.uri}{SCHEMA_FILE}").open("r") as f:
            return json.load(f)
    except (DbndError, ValueError):
        return None  # unreadable: Spark infers the schema as for any folder


def save(value: Any, target: Target, options: dict[str, Any]) -> dict[str, Any]:
    """Write `value` with Spark as a folder at `target`'s URI; return what `Target.save` reports.

    Local folders are written to a staging folder next to the target and renamed into place once
    Spark's job has committed (its `_SUCCESS` marker present); an object store seen from local Spark gets
    the committed staging folder uploaded, `_SUCCESS` last; other engines write other stores in place with
    Spark's own commit protocol, which writes `_SUCCESS` last.
    """
    from dbnd_prefect.spark.engine import active_settings, engine_description
    from dbnd_prefect.targets.folder import SUCCESS_MARKER, folder_checksum, folder_info

    staged_upload = _through_disk(target, active_settings()[1])
    name, compression = _format_of(target)
    source, _, write_defaults = _SOURCES[name]
    write_options = {**write_defaults, **options}
    if compression:
        write_options.setdefault("compression", _CODECS.get(compression, compression))
    final = target.uri.rstrip("/")
    staging = final
    if target.is_local:
        staging = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{uuid.uuid4().hex[:12]}.tmp")
    elif staged_upload:
        staging = os.path.join(tempfile.mkdtemp(prefix="dbnd-spark-out-"), "out")
    partition_by = write_options.pop("partitionBy", None) or write_options.pop("partition_by", None)
    try:
        writer = value.write.mode("overwrite").format(source).options(
            **{k: _option(v) for k, v in write_options.items()})
        if partition_by:
            writer = writer.partitionBy(*([partition_by] if isinstance(partition_by, str) else partition_by))
        writer.save(staging if staging != final else spark_path(target))
        if staging != final:
            if not os.path.exists(os.path.join(staging, SUCCESS_MARKER)):
                raise TargetError(f"Spark left no {SUCCESS_MARKER} marker in '{staging}'")
            with open(os.path.join(staging, SCHEMA_FILE), "w", encoding="utf-8") as f:
                f.write(value.schema.json())
        if staged_upload:
            _upload(staging, target)
        elif target.is_local:
            if os.path.isdir(final):
                shutil.rmtree(final)  # a folder that failed verification: replaced whole
            elif os.path.exists(final):
                os.unlink(final)
            os.replace(staging, final)
    except DbndError:
        raise
    except Exception as exc:
        raise TargetError(f"{engine_description()} failed writing '{target.shown}' as {name}: "
                          f"{_spark_message(exc)}", hint="nothing was written; see the Spark error above") from None
    finally:
        if staging != final and os.path.isdir(staging):
            shutil.rmtree(staging, ignore_errors=True)
        if staged_upload:
            shutil.rmtree(os.path.dirname(staging), ignore_errors=True)
    from dbnd_prefect.targets.target import Target as TargetClass

    folder = TargetClass(final + "/")
    info = folder_info(folder)
    uri = target.uri if target.is_local else final + "/"  # an object store has no folders: the "/" says it is one
    return {"uri": uri, "format": name, "compression": compression, "bytes": info["size"],
            "checksum": folder_checksum(folder), "files": info["files"], "schema": schema_of(value)}


def _through_disk(target: Target, settings: Any) -> bool:
    """Whether Spark reaches `target` through this machine's disk: an object store seen from local Spark, or
    from a cluster's driver (a Databricks job) without a connector for its scheme."""
    from dbnd_prefect.spark.settings import ClusterEngine, LocalEngine

    if target.is_local:
        return False
    if isinstance(settings, ClusterEngine):
        from dbnd_prefect.spark.engine import active_settings, has_connector, session_for

        return not has_connector(session_for(*active_settings()), spark_path(target).partition(":")[0])
    return isinstance(settings, LocalEngine)


def _upload(staging: str, target: Target) -> None:
    """Put the committed folder `staging` at `target`: whatever is there is removed, the parts go first and
    `_SUCCESS` last, so a reader never takes a half-uploaded folder for a finished one."""
    from dbnd_prefect.targets.folder import SUCCESS_MARKER

    fs, remote = target.fs, target.path.rstrip("/")
    if fs.exists(remote):
        fs.rm(remote, recursive=True)
    files = sorted(os.path.relpath(os.path.join(parent, name), staging)
                   for parent, _, names in os.walk(staging) for name in names if not name.endswith(".crc"))
    for relative in sorted(files, key=lambda name: (name == SUCCESS_MARKER, name == SCHEMA_FILE, name)):
        fs.put_file(os.path.join(staging, relative), f"{remote}/{relative.replace(os.sep, '/')}")
    fs.invalidate_cache(remote)


_downloads: list[str] = []


def _local_copy(target: Target) -> str:
    """A local copy of `target` (a file or a folder) for local Spark to read, removed when the process ends
    (Spark reads lazily: the files must outlive the task that loaded them)."""
    if not _downloads:
        atexit.register(lambda: [shutil.rmtree(folder, ignore_errors=True) for folder in _downloads])
    folder = tempfile.mkdtemp(prefix="dbnd-spark-in-")
    _downloads.append(folder)
    local = os.path.join(folder, os.path.basename(target.path.rstrip("/")) or "data")
    if target.is_folder():
        target.fs.get(target.path.rstrip("/") + "/", local + "/", recursive=True)
    else:
        target.fs.get_file(target.path, local)
    return local


def schema_of(value: Any) -> dict[str, str]:
    """Column name -> Spark type (`bigint`, `string`, ...) of a Spark DataFrame, from its plan (no job)."""
    return {field.name: field.dataType.simpleString() for field in value.schema.fields}


def handed_on(value: Any, info: dict[str, Any]) -> Any:
    """The stored output as a Spark DataFrame with `value`'s schema: what downstream tasks read instead of
    computing `value`'s plan again."""
    from dbnd_prefect.spark.engine import active_settings, spark_session
    from dbnd_prefect.targets.target import Target

    target = Target(info["uri"], format=info["format"])
    if not target.is_local and _through_disk(target, active_settings()[1]):
        return value  # its upload was from a folder that is gone; the value holds the same rows
    source, read_defaults, _ = _SOURCES[info["format"]]
    try:
        schema = value.schema
        read_defaults = {k: v for k, v in read_defaults.items() if k != "inferSchema"}
        reader = spark_session().read.format(source).schema(schema)
        return reader.options(**{k: _option(v) for k, v in read_defaults.items()}).load(spark_path(target))
    except Exception:
        return value  # the value itself still holds the same rows


def to_pandas(value: Any, max_rows: int | None = None) -> Any:
    """A Spark DataFrame as a pandas DataFrame through Arrow; FormatError above `max_rows` rows (nothing collected)."""
    from dbnd_prefect.spark.engine import active_settings

    env, settings = active_settings()
    limit = max_rows or settings.to_pandas_max_rows
    rows = value.limit(limit + 1).count()
    if rows > limit:
        raise FormatError(
            f"a Spark DataFrame of more than {limit:,} rows would be collected into pandas",
            hint=f"annotate the parameter pyspark.sql.DataFrame to keep it in Spark, or raise "
                 f"env.{env}.spark.to_pandas_max_rows")
    from dbnd_prefect.spark import quiet_pyspark

    quiet_pyspark()
    if hasattr(value, "toArrow"):
        return value.toArrow().to_pandas()
    return value.toPandas()


def _option(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def _spark_message(exc: BaseException) -> str:
    """The first line of a Spark error, without the JVM stack trace pyspark appends."""
    from dbnd_prefect.redaction import one_line

    text = str(getattr(exc, "getMessage", lambda: None)() or exc)
    text = text.split("\n\tat ", 1)[0].split("\nJVM stacktrace:", 1)[0]
    return one_line(f"{type(exc).__name__}: {text}", 400)
