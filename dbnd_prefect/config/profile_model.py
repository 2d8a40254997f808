"""Environment profiles: where a run executes (work pool, task runner) and where its data lives.

A profile is the `[env.NAME]` table of the configuration, over a built-in one (`local`, `docker`,
`k8s`) and over the profile it `extends` (multi-level; `local` when it names none):

    [env.k8s_prod]
    extends = "k8s"
    data_root = "s3://bucket/root"
    task_runner = { type = "dask", address = "tcp://scheduler:8786" }
    job_variables = { image = "me/pipelines:1", namespace = "prod" }
    env = { LOG_LEVEL = "debug" }

What a profile holds is modelled here; config/profiles.py resolves it.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from dbnd_prefect import plugins
from dbnd_prefect.config.model import ConfigValue
from dbnd_prefect.config.settings import RUN_KEYS

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
# Tables that engine plugins validate (`[env.NAME.spark]`), from the plugin registry.
PLUGIN_TABLES: tuple[str, ...] = plugins.profile_tables()
PROFILE_KEYS: tuple[str, ...] = ("extends", "work_pool", "job_variables", "task_runner", "env", *WORKER_KEYS,
                                 *PLUGIN_TABLES, *PROFILE_RUN_KEYS)

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
TABLE_KEYS = ("work_pool", "task_runner", "job_variables", "env", *PLUGIN_TABLES)
MAPPING_VARIABLES = ("env", "labels", "annotations", "container_create_kwargs")
LIST_VARIABLES = ("volumes", "networks")
TEXT_VARIABLES = ("image", "namespace", "service_account_name", "name", "network_mode", "working_dir",
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
    """prefect-ray: a Ray cluster at `address`, or a local one started for each flow run; `init_kwargs` go to
    `ray.init` (e.g. `{ num_cpus = 2, include_dashboard = false }`)."""

    type: Literal["ray"]
    address: str | None = None
    init_kwargs: dict[str, Any] = Field(default_factory=dict)


TaskRunnerSpec = Annotated[ThreadRunner | DaskRunner | RayRunner, Field(discriminator="type")]
RUNNER_MODELS: dict[str, type[BaseModel]] = {"thread": ThreadRunner, "dask": DaskRunner, "ray": RayRunner}


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
    tables: dict[str, dict[str, Any]] = {}  # engine plugins' tables (`spark`), as written

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
    plugin_settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # table -> what its plugin made

    def plugin_setting(self, table: str) -> Any:
        """What the plugin of `table` (`spark`) validated from this profile's table; an empty table's default."""
        found = self.plugin_settings.get(table)
        if found is None:
            found = plugins.profile_table_validator(table)(self.name, {}, None)
        return found

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
        """The job variables of the profile's work pool type (see config/work_pools.py)."""
        from dbnd_prefect.config.work_pools import job_variables

        return job_variables(self.profile.work_pool.type, self.worker_settings(), where=f"profile '{self.name}'")

    def run_values(self) -> dict[str, ProfileValue]:
        """The run settings (data_root, storage_block, ...) this profile sets."""
        return {path[0]: found for path, found in self.values.items()
                if len(path) == 1 and path[0] in PROFILE_RUN_KEYS}
