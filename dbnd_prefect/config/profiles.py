"""Resolving an environment profile: its `[env.NAME]` tables over its parents and the built-in profiles.

See profile_model.py for what a profile holds. A profile's value beats its parent's unless the parent's came
from a higher configuration layer; a `work_pool` or `task_runner` table whose `type` differs from the inherited
one replaces it whole. Every value keeps where it came from (`ProfileValue`), so `dbnd show-env` can say which
file line, variable or `--set` set it. Engine plugins' tables (`[env.NAME.spark]`) are validated by the plugin.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from pydantic import ValidationError

from dbnd_prefect import plugins
from dbnd_prefect.config.envs import BUILTIN_ENV, BUILTIN_ENVS, known_envs, unknown_env
from dbnd_prefect.config.model import ConfigValue, DbndConfig, display_value
from dbnd_prefect.config.profile_model import (
    BUILTIN_PROFILES,
    JOB_VARIABLES,
    LIST_VARIABLES,
    MAPPING_VARIABLES,
    PLUGIN_TABLES,
    PROFILE_KEYS,
    PROFILE_RUN_KEYS,
    RUNNER_MODELS,
    TABLE_KEYS,
    TEXT_VARIABLES,
    Path,
    Profile,
    ProfileValue,
    ResolvedProfile,
)
from dbnd_prefect.errors import ConfigError, close_names, suggest

# ----- resolving -------------------------------------------------------------------------------------------


def resolve_profile(config: DbndConfig, name: str) -> ResolvedProfile:
    """Profile `name` with its parents applied, validated; ConfigError names the culprit and its source.

    Unknown profile, unknown key, missing parent or a cycle of `extends` are errors with the
    closest name where one fits.
    """
    known = known_envs(config)
    if name not in known:
        raise unknown_env(name, known)
    chain = _chain(config, name, known)
    merged: dict[Path, ProfileValue] = {}
    for member in reversed(chain):  # the furthest parent first
        own = _own_values(config, member)
        for table in ("work_pool", "task_runner"):
            kind, inherited = own.get((table, "type")), merged.get((table, "type"))
            if kind is not None and inherited is not None and kind.value != inherited.value:
                merged = {path: found for path, found in merged.items() if path[0] != table}
        for path, found in own.items():
            current = merged.get(path)
            if current is None or found.rank >= current.rank:
                merged[path] = found
    profile, plugin_settings = _validated(name, merged)
    resolved = ResolvedProfile(profile, merged, tuple(chain), plugin_settings)
    resolved.job_variables()  # checks the worker settings against the pool type (pure, no Prefect)
    return resolved


def _chain(config: DbndConfig, name: str, known: list[str]) -> list[str]:
    chain = [name]
    while True:
        current = chain[-1]
        declared = config.get_value(f"env.{current}", "extends")
        if declared is None:
            parent = None if current == BUILTIN_ENV or current in BUILTIN_ENVS else BUILTIN_ENV
        else:
            parent = declared.value
            if not isinstance(parent, str) or not parent:
                raise ConfigError(f"env.{current}.extends = {parent!r} at {declared.source} is not a profile name",
                                  hint=f"name one of: {', '.join(known)}")
            if parent not in known:
                raise ConfigError(
                    f"env.{current} extends unknown environment {parent!r} at {declared.source}"
                    f"{suggest(parent, known)}",
                    hint=f"known profiles: {', '.join(known)}; define it as an [env.{parent}] table")
            if parent in chain:
                cycle = " -> ".join([*chain[chain.index(parent):], parent])
                raise ConfigError(f"env.{current}.extends = {parent!r} at {declared.source} makes a cycle: {cycle}",
                                  hint="let one of these profiles extend a built-in one (local, docker, k8s)")
        if parent is None:
            return chain
        chain.append(parent)


def _own_values(config: DbndConfig, name: str) -> dict[Path, ProfileValue]:
    """The built-in values of `name` (if it is a built-in profile) under its `[env.NAME]` tables."""
    values: dict[Path, ProfileValue] = {}
    for path, value in _leaves(BUILTIN_PROFILES.get(name, {})):
        values[path] = ProfileValue(value, "default", f"built-in {name}", name)
    prefix = f"env.{name}"
    for section in config.sections():
        if section != prefix and not section.startswith(prefix + "."):
            continue
        inner = tuple(section[len(prefix) + 1:].split(".")) if section != prefix else ()
        for key, found in config.section(section).items():
            path = inner + (key,)
            _check_key(name, path, found)
            if path == ("extends",):
                continue
            if path in (("work_pool",), ("task_runner",)) and isinstance(found.value, str):
                path = path + ("name" if path[0] == "work_pool" else "type",)  # shorthand: work_pool = "pool"
            for leaf, value in _leaves(found.value, path):
                current = values.get(leaf)
                if current is None or found.rank >= current.rank:
                    values[leaf] = ProfileValue(value, found.layer, found.source, name)
    return values


def _leaves(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    # tables flatten to their leaves, as TOML tables do in the configuration (lists stay whole)
    if isinstance(value, Mapping) and (not path or path[0] in TABLE_KEYS):
        for key, inner in value.items():
            yield from _leaves(inner, path + (str(key),))
    else:
        yield path, value


def _check_key(name: str, path: Path, found: ConfigValue) -> None:
    key = path[0]
    dotted = ".".join(("env", name, *path))
    if key not in PROFILE_KEYS:
        raise ConfigError(f"unknown key {dotted} at {found.source}{suggest(key, PROFILE_KEYS)}",
                          hint=f"profile keys: {', '.join(PROFILE_KEYS)}")
    if key not in TABLE_KEYS and len(path) > 1:
        raise ConfigError(f"env.{name}.{key} at {found.source} is a value, not a table",
                          hint=f"write {key} = ... in [env.{name}]")


def check_profile_key(dotted: str) -> None:
    """ConfigError naming the closest key when `env.NAME.KEY...` names no profile setting (for `config explain`)."""
    parts = dotted.split(".")
    if len(parts) < 3 or not parts[1]:
        raise ConfigError(f"config key {dotted!r} names no profile setting", hint="use env.NAME.KEY, e.g. "
                                                                                  "env.prod.data_root")
    path = tuple(parts[2:])
    _check_key(parts[1], path, ConfigValue(None, "set", "config explain"))
    if path[0] in ("work_pool", "task_runner") and len(path) == 2:
        valid = ("name", "type") if path[0] == "work_pool" else \
            tuple(dict.fromkeys(field for model in RUNNER_MODELS.values() for field in model.model_fields))
        if path[1] not in valid:
            raise ConfigError(f"unknown key {dotted}{suggest(path[1], valid)}",
                              hint=f"{path[0]} keys: {', '.join(valid)}")


def _validated(name: str, merged: Mapping[Path, ProfileValue]) -> tuple[Profile, dict[str, Any]]:
    data: dict[str, Any] = {"name": name}
    for path, found in merged.items():
        if path[0] in PROFILE_RUN_KEYS and path[0] not in ("data_root", "storage_block"):
            continue  # the run settings check these (RunSettings)
        target = data.setdefault("tables", {}) if path[0] in PLUGIN_TABLES else data
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = found.value
    data.setdefault("work_pool", {}).setdefault("name", name)
    runner = data.get("task_runner", {})
    kind = runner.get("type", "thread")
    model = RUNNER_MODELS.get(kind)
    if model is None:
        found = merged[("task_runner", "type")]
        raise ConfigError(f"unknown task runner env.{name}.task_runner.type = {kind!r} at {found.where(name)}"
                          f"{suggest(str(kind), RUNNER_MODELS)}", hint="use thread, dask or ray")
    for key in runner:
        if key not in model.model_fields:
            found = merged[("task_runner", key)]
            valid = [field for field in model.model_fields if field != "type"]
            raise ConfigError(f"unknown key env.{name}.task_runner.{key} for a {kind} runner at {found.where(name)}"
                              f"{suggest(key, valid)}", hint=f"{kind} runner keys: type, {', '.join(valid)}")
    try:
        profile = Profile(**data)
    except ValidationError as error:
        raise _config_error(name, error, merged) from None
    _check_job_variables(profile, merged)
    plugin_settings = {}
    for table, values in profile.tables.items():
        validate = plugins.profile_table_validator(table)
        plugin_settings[table] = validate(name, values, lambda path, t=table: _found(merged, (t, *path)).where(name))
    return profile, plugin_settings


def _found(merged: Mapping[Path, ProfileValue], path: Path) -> ProfileValue:
    """The value at `path`, or the first one below it (a table's leaves)."""
    return merged.get(path) or next(found for p, found in merged.items() if p[: len(path)] == path)


def _config_error(name: str, error: ValidationError, merged: Mapping[Path, ProfileValue]) -> ConfigError:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    if loc[:1] == ["tables"]:
        del loc[0]  # plugin tables are written at the profile's top level
    if loc[:1] == ["task_runner"] and len(loc) > 1 and loc[1] in RUNNER_MODELS:
        del loc[1]  # the discriminator's tag
    path = tuple(loc)
    while path and path not in merged and not any(p[: len(path)] == path for p in merged):
        path = path[:-1]
    found = merged.get(path) or next((merged[p] for p in merged if p[: len(path)] == path), None)
    key = ".".join(("env", name, *loc)) if loc else f"env.{name}"
    message = first["msg"].removeprefix("Value error, ")
    if found is None:
        return ConfigError(f"invalid {key}: {message}", hint=f"set it in [env.{name}]")
    shown = f" = {display_value(path[-1], found.value)}" if path in merged else ""
    return ConfigError(f"invalid {key}{shown} at {found.where(name)}: {message}", hint=f"fix the value at {found.source}")


def _check_job_variables(profile: Profile, merged: Mapping[Path, ProfileValue]) -> None:
    pool = profile.work_pool.type
    valid = JOB_VARIABLES[pool]
    others = {key for kind, keys in JOB_VARIABLES.items() if kind != pool for key in keys}
    for key, value in profile.job_variables.items():
        found = _found(merged, ("job_variables", key))
        dotted = f"env.{profile.name}.job_variables.{key}"
        if key not in valid and key in others:
            raise ConfigError(f"{dotted} at {found.where(profile.name)} is not a job variable of a {pool} work pool",
                              hint=f"{pool} pool job variables: {', '.join(valid)}")
        if key not in valid and close_names(key, valid, n=1, cutoff=0.75):
            raise ConfigError(f"unknown job variable {dotted} at {found.where(profile.name)}{suggest(key, valid)}",
                              hint=f"{pool} pool job variables: {', '.join(valid)}")
        expected = (Mapping, "a table") if key in MAPPING_VARIABLES else (list, "a list") \
            if key in LIST_VARIABLES else (str, "a text") if key in TEXT_VARIABLES else None
        if expected is not None and not isinstance(value, expected[0]):
            raise ConfigError(f"invalid {dotted} = {display_value(key, value)} at {found.where(profile.name)}: "
                              f"must be {expected[1]}", hint=f"fix the value at {found.source}")


__all__ = ["resolve_profile", "check_profile_key"]
