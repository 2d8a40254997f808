"""Environment profiles: where a run executes (work pool, task runner) and where its data lives.

A profile is the `[env.NAME]` table of the configuration, over a built-in one (`local`, `docker`,
`k8s`) and over the profile it `extends` (multi-level; `local` when it names none):

    [env.k8s_prod]
    extends = "k8s"
    data_root = "s3://bucket/root"
    task_runner = { type = "dask", address = "tcp://scheduler:8786" }
    job_variables = { image = "me/pipelines:1", namespace = "prod" }
    env = { LOG_LEVEL = "debug" }

A profile's value beats its parent's unless the parent's came from a higher configuration layer
(the rule `[env.NAME]` already follows over `[run]`); a `work_pool` or `task_runner` table whose
`type` differs from the inherited one replaces it whole. Every value keeps where it came from
(`ProfileValue`), so `dbnd show-env` can say which file line, variable or `--set` set it.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Iterator, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator, model_validator

from dbnd_prefect.config.model import ConfigValue, DbndConfig, display_value
from dbnd_prefect.config.settings import BUILTIN_ENV, BUILTIN_ENVS, RUN_KEYS, active_env, known_envs
from dbnd_prefect.errors import ConfigError, close_names, suggest

Path = tuple[str, ...]

# What the built-in profiles hold; `[env.local]`, `[env.docker]`, `[env.k8s]` tables change them.
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "local": {"work_pool": {"name": "local", "type": "process"}, "task_runner": {"type": "thread"}},
    "docker": {"work_pool": {"name": "docker", "type": "docker"}, "task_runner": {"type": "thread"}},
    "k8s": {"work_pool": {"name": "k8s", "type": "kubernetes"}, "task_runner": {"type": "thread"},
            "namespace": "default"},
}

# Run settings a profile may set for the runs in it (`run.env` is the profile's own name).
PROFILE_RUN_KEYS: tuple[str, ...] = tuple(key for key in RUN_KEYS if key != "env")
# What the work pool's runs need, turned into the pool type's job variables by `work_pools.job_variables`.
WORKER_KEYS: tuple[str, ...] = ("image", "namespace", "cpu", "memory", "service_account", "volumes")
PROFILE_KEYS: tuple[str, ...] = ("extends", "work_pool", "job_variables", "task_runner", "env", *WORKER_KEYS,
                                 "spark", *PROFILE_RUN_KEYS)

# The variables of Prefect's default base job template per pool type (prefect, prefect-docker,
# prefect-kubernetes). A pool with its own template may take others: unknown names pass, but a
# name of another pool type, or one close to a known name, is a mistake.
JOB_VARIABLES: dict[str, tuple[str, ...]] = {
    "process": ("name", "env", "labels", "command", "stream_output", "working_dir"),
    "docker": ("command", "env", "labels", "name", "image", "registry_credentials", "image_pull_policy",
               "networks", "network_mode", "auto_remove", "volumes", "stream_output", "mem_limit",
               "memswap_limit", "privileged", "container_create_kwargs"),
    "kubernetes": ("name", "env", "labels", "command", "annotations", "namespace", "image",
                   "service_account_name", "image_pull_policy", "backoff_limit", "finished_job_ttl",
                   "job_watch_timeout_seconds", "pod_watch_timeout_seconds", "stream_output", "cluster_config",
                   "cpu_request", "cpu_limit", "memory_request", "memory_limit", "volumes", "volume_mounts"),
}
_TABLE_KEYS = ("work_pool", "task_runner", "job_variables", "env", "spark")
_MAPPING_VARIABLES = ("env", "labels", "annotations", "container_create_kwargs")
_LIST_VARIABLES = ("volumes", "networks")
_TEXT_VARIABLES = ("image", "namespace", "service_account_name", "name", "network_mode", "working_dir",
                   "image_pull_policy")


# ----- the model -------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkPool(_Strict):
    """The Prefect work pool deployments of this profile run on."""

    name: str
    type: Literal["process", "docker", "kubernetes"] = "process"


class ThreadRunner(_Strict):
    """Prefect's thread pool in this process; `max_workers` unset: the library's bounded default."""

    type: Literal["thread"] = "thread"
    max_workers: PositiveInt | None = None


class DaskRunner(_Strict):
    """prefect-dask: a running `distributed` scheduler at `address`, or a local cluster of this size."""

    type: Literal["dask"]
    address: str | None = None
    n_workers: PositiveInt | None = None
    threads_per_worker: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_cluster(self) -> "DaskRunner":
        if self.address and (self.n_workers or self.threads_per_worker):
            raise ValueError("address names a running cluster, n_workers/threads_per_worker size a local one: "
                             "give one or the other")
        return self


class RayRunner(_Strict):
    """prefect-ray (optional): a Ray cluster at `address`, or a local one."""

    type: Literal["ray"]
    address: str | None = None


TaskRunnerSpec = Annotated[ThreadRunner | DaskRunner | RayRunner, Field(discriminator="type")]
_RUNNER_MODELS: dict[str, type[BaseModel]] = {"thread": ThreadRunner, "dask": DaskRunner, "ray": RayRunner}


class Profile(_Strict):
    """One environment profile, resolved through its parents."""

    name: str
    extends: str | None = None
    work_pool: WorkPool
    job_variables: dict[str, Any] = {}  # raw variables of the pool's base job template, passed through last
    image: str | None = None
    namespace: str | None = None
    cpu: str | float | None = None
    memory: str | int | None = None
    service_account: str | None = None
    volumes: list[Any] = []
    task_runner: TaskRunnerSpec = ThreadRunner()
    data_root: str | None = None
    storage_block: str | None = None
    env: dict[str, str] = {}
    spark: dict[str, Any] = {}  # the Spark engine's settings (kept for the Spark engine; a table only)

    @field_validator("env", mode="before")
    @classmethod
    def _env_as_text(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = {}
        for key, item in value.items():
            if isinstance(item, (Mapping, list, tuple)):
                raise ValueError(f"variable {key!r} must be a text, number or boolean, not a table or list")
            out[str(key)] = ("true" if item else "false") if isinstance(item, bool) else str(item)
        return out


@dataclasses.dataclass(frozen=True)
class ProfileValue:
    """A profile value and where it came from: the configuration layer, its source and the profile
    (in the `extends` chain) whose table holds it."""

    value: Any
    layer: str
    source: str
    profile: str

    @property
    def rank(self) -> int:
        return ConfigValue(self.value, self.layer, self.source).rank

    @property
    def builtin(self) -> bool:
        return self.layer == "default"

    def where(self, resolved_name: str) -> str:
        """`built-in k8s`, `dbnd.toml:4`, `env DBND__ENV__PROD__DATA_ROOT`, `--set ...`, plus the
        parent profile it was inherited from."""
        inherited = f" (from env.{self.profile})" if self.profile != resolved_name and not self.builtin else ""
        return f"{self.source}{inherited}"


@dataclasses.dataclass(frozen=True)
class ResolvedProfile:
    """A validated profile and the provenance of each value set for it (built-in or configured)."""

    profile: Profile
    values: dict[Path, ProfileValue]
    chain: tuple[str, ...]  # the profile and its parents, the profile first

    @property
    def name(self) -> str:
        return self.profile.name

    def configured(self, key: str) -> bool:
        """Whether configuration (not only the built-in profile) sets something under `key`."""
        return any(path[0] == key and not found.builtin for path, found in self.values.items())

    def worker_settings(self) -> dict[str, Any]:
        """What the profile's work pool runs need: env, image, namespace, cpu, memory, ... and raw job_variables."""
        profile = self.profile
        settings = {key: getattr(profile, key) for key in WORKER_KEYS if (key,) in self.values}
        settings.update({key: value for key, value in (("env", profile.env), ("job_variables", profile.job_variables))
                         if value})
        return settings

    def job_variables(self) -> dict[str, Any]:
        """The job variables of the profile's work pool type (see `dbnd_prefect.work_pools`)."""
        from dbnd_prefect.work_pools import job_variables

        return job_variables(self.profile.work_pool.type, self.worker_settings(), where=f"profile '{self.name}'")

    def run_values(self) -> dict[str, ProfileValue]:
        """The run settings (data_root, storage_block, ...) this profile sets."""
        return {path[0]: found for path, found in self.values.items()
                if len(path) == 1 and path[0] in PROFILE_RUN_KEYS}


# ----- resolving -------------------------------------------------------------------------------------------


def resolve_profile(config: DbndConfig, name: str) -> ResolvedProfile:
    """Profile `name` with its parents applied, validated; ConfigError names the culprit and its source.

    Unknown profile, unknown key, missing parent or a cycle of `extends` are errors with the
    closest name where one fits.
    """
    known = known_envs(config)
    if name not in known:
        raise ConfigError(f"unknown environment {name!r}{suggest(name, known)}",
                          hint=f"known profiles: {', '.join(known)}; define others as [env.NAME] tables")
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
    resolved = ResolvedProfile(_validated(name, merged), merged, tuple(chain))
    resolved.job_variables()  # checks the worker settings against the pool type (pure, no Prefect)
    return resolved


def active_profile(config: DbndConfig) -> ResolvedProfile:
    """The profile selected by `run.env` (`local` by default)."""
    return resolve_profile(config, active_env(config))


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
    if isinstance(value, Mapping) and (not path or path[0] in _TABLE_KEYS):
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
    if key not in _TABLE_KEYS and len(path) > 1:
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
            tuple(dict.fromkeys(field for model in _RUNNER_MODELS.values() for field in model.model_fields))
        if path[1] not in valid:
            raise ConfigError(f"unknown key {dotted}{suggest(path[1], valid)}",
                              hint=f"{path[0]} keys: {', '.join(valid)}")


def _validated(name: str, merged: Mapping[Path, ProfileValue]) -> Profile:
    data: dict[str, Any] = {"name": name}
    for path, found in merged.items():
        if path[0] in PROFILE_RUN_KEYS and path[0] not in ("data_root", "storage_block"):
            continue  # the run settings check these (RunSettings)
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = found.value
    data.setdefault("work_pool", {}).setdefault("name", name)
    runner = data.get("task_runner", {})
    kind = runner.get("type", "thread")
    model = _RUNNER_MODELS.get(kind)
    if model is None:
        found = merged[("task_runner", "type")]
        raise ConfigError(f"unknown task runner env.{name}.task_runner.type = {kind!r} at {found.where(name)}"
                          f"{suggest(str(kind), _RUNNER_MODELS)}", hint="use thread, dask or ray")
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
    if profile.spark:
        from dbnd_prefect.spark.settings import spark_settings

        spark_settings(name, profile.spark, lambda path: _found(merged, ("spark", *path)).where(name))
    return profile


def _found(merged: Mapping[Path, ProfileValue], path: Path) -> ProfileValue:
    """The value at `path`, or the first one below it (a table's leaves)."""
    return merged.get(path) or next(found for p, found in merged.items() if p[: len(path)] == path)


def _config_error(name: str, error: ValidationError, merged: Mapping[Path, ProfileValue]) -> ConfigError:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    if loc[:1] == ["task_runner"] and len(loc) > 1 and loc[1] in _RUNNER_MODELS:
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
        expected = (Mapping, "a table") if key in _MAPPING_VARIABLES else (list, "a list") \
            if key in _LIST_VARIABLES else (str, "a text") if key in _TEXT_VARIABLES else None
        if expected is not None and not isinstance(value, expected[0]):
            raise ConfigError(f"invalid {dotted} = {display_value(key, value)} at {found.where(profile.name)}: "
                              f"must be {expected[1]}", hint=f"fix the value at {found.source}")


__all__ = ["BUILTIN_PROFILES", "PROFILE_KEYS", "WORKER_KEYS", "Profile", "ProfileValue", "ResolvedProfile", "WorkPool",
           "ThreadRunner", "DaskRunner", "RayRunner", "resolve_profile", "active_profile", "check_profile_key"]
