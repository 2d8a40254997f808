"""The one registry through which engines plug in: lazy `name -> "module:attr"` references, fsspec-style.

The core never imports a plugin by name. It asks this registry, which holds strings and imports the
referenced object only when a value of that engine is read, written, fingerprinted or profiled, or when
a profile asks for that task runner. What a plugin registers:

- a frame type (`FrameType`): a DataFrame family an engine reads and writes itself (Spark): its type key
  and class names, the file formats it handles, and references to its io, fingerprint feeder and profiler;
- a profile table (`[env.NAME.<table>]`): the validator of an engine's settings in a profile;
- a task runner (`task_runner = { type = "<name>" }`): a factory of Prefect task runners;
- a task sender for a profile table: given the table's settings, the `TaskSender` (or None) that runs some
  task calls elsewhere (a Spark task sent to Databricks as a job run).

Built-in entries are listed below; `register_*` adds or replaces one (later wins). A reference whose
module is not installed is one clear error naming the package to install.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol

from dbnd_prefect.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class FrameType:
    """A DataFrame family read and written by its own engine, from and to URIs (folders of part files)."""

    key: str  # the type key annotations and values map to, e.g. "pyspark.DataFrame"
    classes: tuple[str, ...]  # `module.QualName` of the classes that are this type
    library: str  # the top-level package its classes live in ("pyspark")
    formats: tuple[str, ...]  # file formats its engine reads and writes
    default_format: str
    io: str  # "module:attr": an object with load(target, options), save(value, target, options),
    #          handed_on(value, info), to_pandas(value)
    fingerprint: str  # "module:attr": feed(walker, hasher, value) -> bool (False: fingerprint it generically)
    profiler: str  # "module:attr": profile(value, options) -> dict
    package: str  # what to install when the library is missing


@dataclasses.dataclass(frozen=True)
class Reference:
    """A lazily imported object, and the package that provides it."""

    target: str  # "module:attr"
    package: str | None = None


_FRAME_TYPES: dict[str, FrameType] = {
    "pyspark.DataFrame": FrameType(
        key="pyspark.DataFrame",
        classes=("pyspark.sql.dataframe.DataFrame", "pyspark.sql.connect.dataframe.DataFrame", "pyspark.DataFrame"),
        library="pyspark",
        formats=("csv", "tsv", "json", "jsonl", "parquet", "orc"),
        default_format="parquet",
        io="dbnd_prefect.spark.io",  # the module: load, save, handed_on, to_pandas
        fingerprint="dbnd_prefect.spark.fingerprint:feed_spark",
        profiler="dbnd_prefect.spark.profile:profile_spark",
        package="pyspark (pip install 'dbnd-prefect[spark]')",
    ),
}
_PROFILE_TABLES: dict[str, Reference] = {
    "spark": Reference("dbnd_prefect.spark.settings:check_profile_table"),
}
_TASK_RUNNERS: dict[str, Reference] = {
    "thread": Reference("dbnd_prefect.engine.runners:thread_task_runner"),
    "dask": Reference("dbnd_prefect.engine.dask_runner:dask_task_runner", "prefect-dask"),
    "ray": Reference("dbnd_prefect.engine.ray_runner:ray_task_runner", "prefect-ray"),
}


_TASK_SENDERS: dict[str, Reference] = {
    "spark": Reference("dbnd_prefect.spark.databricks_tasks:sender_for"),
}


class TaskSender(Protocol):
    """What a profile's plugin gives to run some of its task calls elsewhere than in the task run's process."""

    where: str  # for plans and messages: "a Databricks job on cluster X of environment 'dbx'"

    def takes(self, task: Any) -> bool:
        """Whether calls of `task` (a task definition) are sent."""

    def check(self, run: Any) -> None:
        """Before anything runs: ConfigError when calls cannot be sent (settings, credentials, data root)."""

    def submit(self, call: Any, run: Any) -> Any:
        """Run `call` elsewhere and return its stored outputs (`TaskOutputs`)."""


def load(target: str, package: str | None = None, what: str = "") -> Any:
    """The object `module:attr` names, imported now; ConfigError naming the package when it is missing."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if package is None or (exc.name and module_name.startswith(exc.name + ".")):
            raise
        raise ConfigError(f"{what or module_name} needs {package}, which is not installed ({exc.name} is missing)",
                          hint=f"pip install {package.split(' (')[0]}") from None
    found: Any = module
    for part in attr.split(".") if attr else ():
        found = getattr(found, part)
    return found


# ----- frame types -----------------------------------------------------------------------------------------


def register_frame_type(frame_type: FrameType) -> None:
    """Add a frame type, or replace the one with the same key."""
    _FRAME_TYPES[frame_type.key] = frame_type


def frame_types() -> tuple[FrameType, ...]:
    return tuple(_FRAME_TYPES.values())


def frame_type(key: str | None) -> FrameType | None:
    """The frame type with this type key, or None."""
    return _FRAME_TYPES.get(key or "")


def frame_type_of_library(library: str) -> FrameType | None:
    """The frame type whose classes live in top-level package `library`, or None."""
    return next((t for t in _FRAME_TYPES.values() if t.library == library), None)


def frame_type_of(value: Any) -> FrameType | None:
    """The frame type of `value` (by its class names, importing nothing), or None."""
    for klass in type(value).__mro__:
        found = frame_type_of_library(klass.__module__.split(".", 1)[0])
        if found is not None and f"{klass.__module__}.{klass.__qualname__}" in found.classes:
            return found
    return None


def frame_io(key: str) -> Any:
    """The io object of frame type `key` (imported now)."""
    found = _FRAME_TYPES[key]
    return load(found.io, found.package, f"reading or writing {key}")


def frame_fingerprint(key: str) -> Any:
    """The fingerprint feeder of frame type `key` (imported now): feed(walker, hasher, value) -> bool."""
    found = _FRAME_TYPES[key]
    return load(found.fingerprint, found.package, f"fingerprinting {key}")


def frame_profiler(key: str) -> Any:
    """The profiler of frame type `key` (imported now): profile(value, options) -> dict."""
    found = _FRAME_TYPES[key]
    return load(found.profiler, found.package, f"profiling {key}")


# ----- profile tables and task runners -----------------------------------------------------------------------


def register_profile_table(name: str, target: str, package: str | None = None) -> None:
    """Validate `[env.NAME.<name>]` tables with the function `target` names: (profile, table, where) -> settings."""
    _PROFILE_TABLES[name] = Reference(target, package)


def profile_tables() -> tuple[str, ...]:
    return tuple(_PROFILE_TABLES)


def profile_table_validator(name: str) -> Any:
    found = _PROFILE_TABLES[name]
    return load(found.target, found.package, f"[env.*.{name}]")


def register_task_runner(name: str, target: str, package: str | None = None) -> None:
    """Make `task_runner = { type = "<name>" }` build its runner with the factory `target` names:
    (settings, profile name) -> a Prefect task runner."""
    _TASK_RUNNERS[name] = Reference(target, package)


def task_runner_types() -> tuple[str, ...]:
    return tuple(_TASK_RUNNERS)


def task_runner_factory(name: str, profile: str) -> Any:
    found = _TASK_RUNNERS[name]
    return load(found.target, found.package, f"env.{profile}.task_runner.type = '{name}'")


def register_task_sender(table: str, target: str, package: str | None = None) -> None:
    """Let the plugin of profile table `table` send task calls elsewhere: `target` names a function
    (profile name, the table's settings) -> TaskSender | None."""
    _TASK_SENDERS[table] = Reference(target, package)


def task_sender(table: str, profile: str, settings: Any) -> TaskSender | None:
    """The task sender of profile `profile` for its table `table` (validated `settings`), or None."""
    found = _TASK_SENDERS.get(table)
    if found is None:
        return None
    return load(found.target, found.package, f"[env.{profile}.{table}]")(profile, settings)


__all__ = ["FrameType", "TaskSender", "register_task_sender", "task_sender", "Reference", "load", "register_frame_type", "frame_types", "frame_type",
           "frame_type_of_library", "frame_type_of", "frame_io", "frame_fingerprint", "frame_profiler", "register_profile_table", "profile_tables",
           "profile_table_validator", "register_task_runner", "task_runner_types", "task_runner_factory"]
