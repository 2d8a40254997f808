"""Typed views of a config: the `run` section (with the active profile's run values) and task sections."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dbnd_prefect.config.envs import BUILTIN_ENV
from dbnd_prefect.config.model import ConfigValue, DbndConfig, display_value
from dbnd_prefect.errors import ConfigError, suggest


class RunSettings(BaseModel):
    """The validated `run` section (with the active environment profile applied)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_root: str = "data"
    storage_block: str | None = None
    env: str = BUILTIN_ENV
    modules: list[str] = []
    task_version: str | None = None
    task_target_date: dt.date | None = None  # part of every signature and output path (daily partitions)
    verify: Literal["fast", "full"] = "fast"
    input_fingerprint: Literal["fast", "content"] = "fast"
    api: str | None = None  # Prefect API: unset (Prefect's setting, else "local"), "local", "temporary" or a URL
    allow_foreign_pickle: bool = False  # load pickle inputs from outside the data root (unpickling runs code)
    serialize: bool = True  # one run computes a signature at a time; the others wait and reuse (local, S3 roots)
    lock_expiry: float = Field(30.0, gt=0)  # seconds a crashed holder's lock outlives it (a live holder renews it)
    lock_wait: float = Field(3600.0, gt=0)  # seconds a run waits for another computing the same signature

    @field_validator("api")
    @classmethod
    def _api_choice(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().rstrip("/")
        if text in ("local", "temporary") or text.startswith(("http://", "https://")):
            return text
        raise ValueError("must be 'local', 'temporary' or an http(s):// Prefect API URL ending in /api")

    @field_validator("data_root")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        # an unknown protocol would otherwise surface only when the first output is written, as a task failure
        from fsspec.core import split_protocol
        from fsspec.registry import known_implementations, registry

        protocol, _ = split_protocol(value)
        if protocol is None or protocol in ("file", "local", "abfss") or protocol in known_implementations \
                or protocol in registry:
            return value
        raise ValueError(f"unknown storage protocol '{protocol}://' (use a local path or a URI such as s3://, gs://, "
                         "az://, abfs://, hdfs://, memory://)")

    @field_validator("modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        # From env/--set the list arrives as text: "pkg.a, pkg.b".
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("task_version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


RUN_KEYS: tuple[str, ...] = tuple(RunSettings.model_fields)


def check_run_keys(config: DbndConfig) -> None:
    """ConfigError naming an unknown `run.KEY` and its source."""
    for key, found in config.section("run").items():
        if key not in RUN_KEYS:
            raise ConfigError(
                f"unknown key run.{key} at {found.source}{suggest(key, RUN_KEYS)}",
                hint=f"valid run keys: {', '.join(RUN_KEYS)}",
            )


def settings_in_profile(config: DbndConfig, profile_values: Mapping[str, Any], profile_name: str) -> RunSettings:
    """The validated `run` section with the active profile's run values applied; ConfigError naming the source.

    Keys of the active profile (and the profiles it extends) that are run settings (data_root,
    storage_block, ...) replace the `run` value unless that came from a higher layer:
    `[env.prod] data_root` beats `[run] data_root` from the same file, but not
    `--set run.data_root=...`. `profile_values` are the profile's `ProfileValue`s by run key.
    """
    check_run_keys(config)
    values = dict(config.section("run"))
    for key, found in profile_values.items():
        current = values.get(key)
        if current is None or found.rank >= current.rank:
            values[key] = ConfigValue(found.value, found.layer, found.where(profile_name))
    try:
        return RunSettings(**{key: found.value for key, found in values.items()})
    except ValidationError as error:
        first = error.errors()[0]
        key = str(first["loc"][0])
        found = values[key]
        shown = display_value(key, found.value)
        raise ConfigError(
            f"invalid run.{key} = {shown} at {found.source}: {first['msg']}",
            hint=f"fix the value at {found.source}",
        ) from None


def task_values(config: DbndConfig, task_name: str) -> dict[str, ConfigValue]:
    """Configured values for one task: the `task` section (all tasks) under the task's own section.

    A task's own value beats a `task` value from the same or a lower layer; a `task` value from a
    higher layer (e.g. `--set task.x=1`) beats the task's file value.
    """
    merged = dict(config.section("task"))
    for key, found in config.section(task_name).items():
        current = merged.get(key)
        if current is None or found.rank >= current.rank:
            merged[key] = found
    return merged


def check_task_section(config: DbndConfig, task_name: str, valid_params: list[str]) -> None:
    """Raise ConfigError for a key in section `task_name` that is not one of `valid_params`."""
    for key, found in config.section(task_name).items():
        if key not in valid_params:
            valid = ", ".join(valid_params) if valid_params else "none"
            raise ConfigError(
                f"unknown parameter {task_name}.{key} at {found.source}{suggest(key, valid_params)}",
                hint=f"parameters of {task_name}: {valid}",
            )
