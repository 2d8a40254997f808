"""Where and how one task output is stored: its format, file name, and what happens when a format fails.

The format is the one the user forced (`output_formats=`, `Data(format=...)`), else the configured
one for the value's type (`[formats]`), else the type's default; a `List[str]` output is lines of
text, a dict of DataFrames a folder of one file per key. A finished task body's value is never
lost to a storage format: a format chosen here that cannot hold the value gives way to pickle,
with a warning; a forced format that fails leaves the value in a pickle next to where the output
would have been, and the error says where.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from dbnd_prefect.errors import DbndError, FormatError
from dbnd_prefect.targets.folder import is_frame_dict
from dbnd_prefect.targets.builtin_formats import json_faithful, lines_faithful
from dbnd_prefect.targets.formats import (
    NDARRAY,
    default_format_for,
    engine_io,
    format_file_extension,
    resolve_format,
    type_key,
)
from dbnd_prefect.targets.target import Target

logger = logging.getLogger("dbnd_prefect")

FALLBACK = "pickle"


@dataclass(frozen=True)
class OutputRequest:
    """What is known of one output before its value exists."""

    name: str
    forced: str | None = None  # output_formats= or Data(format=...)
    configured: str | None = None  # [formats] for the value's type
    save_options: Mapping[str, Any] = field(default_factory=dict)
    lines: bool = False  # declared List[str]: stored as lines of text
    frames: bool = False  # declared Dict[str, DataFrame]: stored as a folder


def chosen_format(value: Any, request: OutputRequest) -> tuple[str, bool, str | None]:
    """(format spec such as "csv.gz", whether it is a folder, why the natural choice was replaced or None)."""
    key = type_key(type(value))
    if request.forced:
        fmt, _ = resolve_format(request.forced)
        folder = key == "dict" and fmt.can_save("pandas.DataFrame") and not fmt.can_save("dict") \
            and is_frame_dict(value)
        return request.forced, folder, None
    if is_frame_dict(value) and request.configured is None:
        return default_format_for("pandas.DataFrame"), True, None
    if request.lines and request.configured is None and key == "list":
        if lines_faithful(value):
            return "txt", False, None
        return "json", False, None  # items with line breaks or non-strings: JSON keeps them as they are
    spec = request.configured or default_format_for(key)
    try:
        fmt, _ = resolve_format(spec)
    except FormatError as exc:  # a misspelt [formats] entry must not cost the finished body's value
        spec = default_format_for(key)
        return spec, False, f"the configured format is unusable ({exc.message}); using {spec}"
    if not fmt.can_save(key):
        return FALLBACK, False, f"format '{spec}' cannot store {key}"
    if fmt.name == "json" and key in ("dict", "list") and not json_faithful(value):
        return FALLBACK, False, "it does not survive JSON (tuples, non-string keys, dates...)"
    if fmt.name == "npy" and key == NDARRAY and getattr(getattr(value, "dtype", None), "hasobject", False):
        return FALLBACK, False, "it is a numpy array of Python objects, which .npy stores only as pickles"
    return spec, False, None


def planned_uri(folder: str, request: OutputRequest, declared_type_key: str) -> tuple[str, str]:
    """(URI, format name) an output of the declared type is expected at, before its value exists."""
    if request.forced:
        spec = request.forced
        folder_out = declared_type_key == "dict" and not resolve_format(spec)[0].can_save("dict")
    elif declared_type_key == "list" and request.lines and request.configured is None:
        spec, folder_out = "txt", False
    elif declared_type_key == "dict" and request.frames and request.configured is None:
        spec, folder_out = default_format_for("pandas.DataFrame"), True
    else:
        spec, folder_out = request.configured or default_format_for(declared_type_key), False
    try:
        fmt, _ = resolve_format(spec)
    except FormatError:
        spec = default_format_for(declared_type_key)
        fmt, _ = resolve_format(spec)
    if folder_out:
        return f"{folder}/{request.name}/", fmt.name
    return f"{folder}/{request.name}{format_file_extension(spec)}", fmt.name


def output_target(folder: str, request: OutputRequest, spec: str, is_folder: bool) -> Target:
    """The target of an output written in format `spec` inside the task run's output folder."""
    options = dict(request.save_options) or None
    if is_folder:
        return Target(f"{folder}/{request.name}/", format=spec, save_options=options)
    fmt, _ = resolve_format(spec)
    return Target(f"{folder}/{request.name}{format_file_extension(spec)}", format=fmt.name, save_options=options)


def save_output(folder: str, task_name: str, request: OutputRequest, value: Any) -> tuple[Target, dict[str, Any]]:
    """Write one output; return its target and what `Target.save` reports (plus `type_key`)."""
    spec, is_folder, reason = chosen_format(value, request)
    where = f"Task '{task_name}': output '{request.name}'"
    if reason:
        logger.warning("%s: %s; storing it as %s.", where, reason, "a pickle" if spec == FALLBACK else spec)
    target = output_target(folder, request, spec, is_folder)
    try:
        info = target.save(value)
    except DbndError as exc:
        if engine_io(type_key(type(value))) is not None:  # an engine's job failed (Spark): no pickle holds it
            raise exc.add_context(f"task '{task_name}', output '{request.name}'") from None
        if request.forced or spec == FALLBACK:
            raise _rescued(folder, task_name, request, value, spec, exc) from None
        logger.warning("%s cannot be written as %s (%s); storing it as a pickle.", where, spec, exc.message)
        target = output_target(folder, OutputRequest(request.name), FALLBACK, False)
        try:
            info = target.save(value)
        except DbndError:
            raise exc from None
    info = dict(info)
    info["type_key"] = type_key(type(value))
    return target, info


def _rescued(folder: str, task_name: str, request: OutputRequest, value: Any, spec: str,
             error: DbndError) -> DbndError:
    """The error for a forced format that failed, after keeping the value in a pickle if it can be."""
    kept = ""
    if spec != FALLBACK:
        rescue = Target(f"{folder}/{request.name}.unsaved{format_file_extension(FALLBACK)}", format=FALLBACK)
        try:
            rescue.save(value)
            kept = f"; the value was kept at {rescue.shown} (pickle.load / pandas.read_pickle reads it)"
        except DbndError:
            pass
    how = f"format '{request.forced}' was forced" if request.forced else "pickle is the last resort"
    return FormatError(
        f"task '{task_name}': output '{request.name}' cannot be written as {spec} ({how}): {error.message}{kept}",
        hint="force a format that holds this value (output_formats= or Data(format=...)), or drop the forced "
        "format to let the library choose",
    )
