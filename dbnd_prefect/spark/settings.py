"""The `[env.NAME.spark]` table of a profile: which Spark engine a run's Spark tasks use, and its settings.

    [env.dev.spark]                       [env.prod.spark]
    engine = "local"                      engine = "connect"
    cores = 2                             remote = "sc://spark.example.com:15002"
    memory = "2g"
    conf = { "spark.sql.shuffle.partitions" = "4" }

Checked when the profile is resolved (no pyspark needed): an unknown engine or key is one line naming the
closest one. Connection strings may hold tokens: they are shown with credentials masked.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from dbnd_prefect.errors import ConfigError, suggest

ENGINES = ("local", "connect", "databricks", "cluster")
DEFAULT_TO_PANDAS_MAX_ROWS = 5_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Common(_Strict):
    app_name: str = "dbnd-prefect"
    conf: dict[str, str | int | float | bool] = {}  # Spark configuration (runtime SQL settings for remote engines)
    # a pandas parameter given a Spark frame collects it through Arrow up to this many rows, else an error
    to_pandas_max_rows: PositiveInt = DEFAULT_TO_PANDAS_MAX_ROWS
    # automatic profiles of Spark inputs/outputs: the schema only (no Spark job), or full stats (one job each)
    auto_profile: Literal["schema", "full"] = "schema"

    def runs_work_off_this_machine(self, profile_name: str) -> str | None:
        """What of this engine runs task bodies off this machine (for the data-reach checks), or None."""
        return None


class LocalEngine(_Common):
    """Spark in this process: `local[cores]`, one session per process, reused."""

    engine: Literal["local"] = "local"
    master: str | None = None  # default local[cores]; e.g. "local[*]"
    cores: PositiveInt = 1
    memory: str | None = None  # spark.driver.memory, e.g. "2g"
    packages: list[str] = []  # Maven coordinates (spark.jars.packages)


class ConnectEngine(_Common):
    """A Spark Connect server: `remote = "sc://host:port"` (`/;token=...` and other parameters allowed)."""

    engine: Literal["connect"]
    remote: str = Field(pattern=r"^sc://")


class ClusterEngine(_Common):
    """The Spark session of the process the task runs in: a Databricks job's cluster, a `spark-submit` driver.

    What a Databricks job runs a task with (spark/databricks_launcher.py). Object-store URIs are written by
    Spark itself when it has a connector for their scheme, else staged through local disk and uploaded.
    """

    engine: Literal["cluster"]


class DatabricksEngine(_Common):
    """Databricks, with credentials from a prefect-databricks DatabricksCredentials block. With `tasks = "job"`
    (the default) each Spark task of a run is sent to the cluster as a Databricks job run (runs/submit;
    spark/databricks_tasks.py); with `tasks = "connect"` tasks run here and their Spark work runs on cluster
    `cluster_id` through a Databricks Connect session. Whole scripts can be submitted too (databricks_jobs.py)."""

    engine: Literal["databricks"]
    tasks: Literal["job", "connect"] = "job"  # how Spark tasks run: as job runs, or here through Databricks Connect
    cluster_id: str | None = None  # the cluster jobs and Connect sessions run on
    credentials_block: str | None = None  # a prefect-databricks DatabricksCredentials block name
    # job runs (runs/submit): a new job cluster instead of cluster_id, checked against prefect-databricks' models
    new_cluster: dict[str, Any] | None = None
    libraries: list[dict[str, Any]] = []  # e.g. { pypi = { package = "dbnd-prefect" } }
    workspace_dir: str = Field("/Shared/dbnd-prefect", pattern=r"^/")  # where submitted scripts are uploaded
    poll_seconds: PositiveInt = 10
    max_wait_seconds: PositiveInt = 3600

    def runs_work_off_this_machine(self, profile_name: str) -> str | None:
        if self.tasks == "connect":  # task bodies run here; Spark reads URIs where the cluster is
            return None
        return f"its Spark tasks run as Databricks jobs (env.{profile_name}.spark.engine = \"databricks\")"


_MODELS: dict[str, type[_Common]] = {"local": LocalEngine, "connect": ConnectEngine, "databricks": DatabricksEngine,
                                     "cluster": ClusterEngine}
SparkSettings = LocalEngine | ConnectEngine | DatabricksEngine | ClusterEngine


def spark_settings(profile_name: str, table: Mapping[str, Any], where: Any = None) -> SparkSettings:
    """The validated Spark settings of profile `profile_name` (`local` when its table is empty).

    `where(path)` gives the source of a value (file and line) for messages; ConfigError on a bad table.
    """
    table = dict(table or {})
    engine = table.get("engine", "local")
    at = _at(where, ("engine",))
    if engine not in _MODELS:
        raise ConfigError(f"unknown Spark engine env.{profile_name}.spark.engine = {engine!r}{at}"
                          f"{suggest(str(engine), ENGINES)}", hint=f"use one of: {', '.join(ENGINES)}")
    model = _MODELS[engine]
    for key in table:
        if key not in model.model_fields:
            valid = [name for name in model.model_fields if name != "engine"]
            raise ConfigError(f"unknown key env.{profile_name}.spark.{key} for the {engine} engine"
                              f"{_at(where, (key,))}{suggest(key, valid)}",
                              hint=f"{engine} engine keys: engine, {', '.join(valid)}")
    try:
        return model(**{"engine": engine, **table})
    except ValidationError as error:
        first = error.errors()[0]
        loc = [str(part) for part in first["loc"]]
        key = ".".join(loc)
        message = first["msg"].removeprefix("Value error, ")
        if loc == ["remote"]:
            message = "a Spark Connect address looks like sc://host:15002"
        elif loc == ["workspace_dir"]:
            message = "a Databricks workspace folder is an absolute path such as /Shared/dbnd-prefect"
        raise ConfigError(f"invalid env.{profile_name}.spark.{key}{_at(where, tuple(loc[:1]))}: {message}",
                          hint=f"fix env.{profile_name}.spark.{loc[0] if loc else 'engine'}") from None


def _at(where: Any, path: tuple[str, ...]) -> str:
    if where is None:
        return ""
    try:
        found = where(path)
    except Exception:
        return ""
    return f" at {found}" if found else ""


_SECRET = re.compile(r"(;\s*(?:token|password|x-databricks-\w+)\s*=)[^;/]*", re.IGNORECASE)


def shown_remote(remote: str) -> str:
    """A Spark Connect address as it may appear in messages: tokens masked."""
    return _SECRET.sub(r"\1***", remote)


def describe_engine(profile_name: str, settings: SparkSettings) -> str:
    """`Spark engine 'local' (local[1]) of environment 'dev'`, for messages."""
    if isinstance(settings, LocalEngine):
        where = settings.master or f"local[{settings.cores}]"
    elif isinstance(settings, ConnectEngine):
        where = shown_remote(settings.remote)
    elif isinstance(settings, DatabricksEngine):
        where = f"cluster {settings.cluster_id}" if settings.cluster_id else "a new job cluster"
    else:
        where = "this process's session"
    return f"Spark engine '{settings.engine}' ({where}) of environment '{profile_name}'"

check_profile_table = spark_settings  # what the plugin registry calls for an `[env.NAME.spark]` table
