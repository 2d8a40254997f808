"""The Spark session of the run's environment profile: local Spark (one per process, reused) or Spark Connect.

`spark_session()` is what tasks and the Spark formats use; which engine it returns is the profile's
`[env.NAME.spark]` table (see settings.py), so the same task runs on local Spark in development and
on a remote cluster in production with no code change. A session that cannot start (no Java, a
Connect server that does not answer) is one ConfigError naming the engine and the fix.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import urllib.parse
from typing import Any

from dbnd_prefect.errors import ConfigError
from dbnd_prefect.spark.settings import (
    ClusterEngine,
    ConnectEngine,
    DatabricksEngine,
    LocalEngine,
    SparkSettings,
    describe_engine,
)

_lock = threading.RLock()
_sessions: dict[tuple[Any, ...], Any] = {}
_local_settings: LocalEngine | None = None  # what the process's one local session was started with
_CONNECT_PROBE_SECONDS = 5.0
_CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"

# Spark's own log lines at ERROR only. pyspark prints a "Setting default log level" banner when the root level
# differs from the level configured for its own (org.apache.spark...) logger: both are set.
_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.spark.name = org.apache
logger.spark.level = error
logger.netty.name = io.netty
logger.netty.level = error
logger.sparkproject.name = org.sparkproject
logger.sparkproject.level = error
"""


def active_settings(config: Any = None) -> tuple[str, SparkSettings]:
    """(environment name, Spark settings) of the run in effect, else of the current configuration."""
    from dbnd_prefect.config.resolved import active_profile
    from dbnd_prefect.context import current_run

    run = current_run() if config is None else None
    if run is not None:  # resolved with the run
        resolved = run.profile
    else:
        from dbnd_prefect.config import current_config

        resolved = active_profile(config if config is not None else current_config())
    return resolved.name, resolved.plugin_setting("spark")


def spark_session(config: Any = None) -> Any:
    """The SparkSession of the active profile's Spark engine (started on first use, then reused)."""
    env, settings = active_settings(config)
    return session_for(env, settings)


def engine_description(config: Any = None) -> str:
    """`Spark engine 'connect' (sc://...) of environment 'prod'` for the active profile, for messages."""
    try:
        return describe_engine(*active_settings(config))
    except Exception:
        return "Spark engine"


def session_for(env: str, settings: SparkSettings) -> Any:
    """The session for these settings: one local session per process, one Connect session per address."""
    from dbnd_prefect.spark import quiet_pyspark

    quiet_pyspark()
    with _lock:
        # pyspark.sql.functions builds classic or Connect columns by this variable: it follows the engine in use
        if isinstance(settings, LocalEngine):
            os.environ.pop(_CONNECT_MODE, None)
            return _local_session(env, settings)
        if isinstance(settings, ClusterEngine):
            os.environ.pop(_CONNECT_MODE, None)
            return _cluster_session(env, settings)
        os.environ[_CONNECT_MODE] = "1"
        if isinstance(settings, ConnectEngine):
            return _connect_session(env, settings)
        return _databricks_session(env, settings)


def _local_session(env: str, settings: LocalEngine) -> Any:
    global _local_settings
    session = _sessions.get(("local",))
    if session is not None and _alive(session):
        if _local_settings is not None and _static(_local_settings) != _static(settings):
            raise ConfigError(
                f"{describe_engine(env, settings)} asks for other master, memory or packages than the local Spark "
                "session this process already runs",
                hint="one local Spark session runs per process: use the same env.NAME.spark settings, or run "
                     "the other environment in another process")
        _apply_runtime_conf(session, settings.conf)
        return session
    _check_java(env, settings)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    master = settings.master or f"local[{settings.cores}]"
    builder = SparkSession.builder.master(master).appName(settings.app_name)
    conf: dict[str, Any] = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile={_log4j_file()}",
    }
    if settings.memory:
        conf["spark.driver.memory"] = settings.memory
    if settings.packages:
        conf["spark.jars.packages"] = ",".join(settings.packages)
    conf.update({key: _text(value) for key, value in settings.conf.items()})
    session = _started(builder, conf, env, settings)
    _sessions[("local",)] = session
    _local_settings = settings
    return session


def _cluster_session(env: str, settings: ClusterEngine) -> Any:
    """The session of the Spark driver this process is (a Databricks job, spark-submit): taken, not configured,
    beyond runtime settings; a plain Python process without one gets a quiet local session."""
    session = _sessions.get(("cluster",))
    if session is None or not _alive(session):
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        conf = {}
        if SparkContext._active_spark_context is None:  # no driver yet: this process starts one
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            conf = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                    "spark.driver.extraJavaOptions": f"-Dlog4j.configurationFile={_log4j_file()}"}
        session = _started(SparkSession.builder.appName(settings.app_name), conf, env, settings)
        _sessions[("cluster",)] = session
    _apply_runtime_conf(session, settings.conf)
    return session


def has_connector(session: Any, scheme: str) -> bool:
    """Whether the Spark driver of `session` has a Hadoop file system for `scheme` (s3, gs, abfs...)."""
    key = ("connector", scheme)
    found = _sessions.get(key)
    if found is None:
        try:
            jvm = session.sparkContext._jvm
            jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(scheme, session.sparkContext._jsc.hadoopConfiguration())
            found = True
        except Exception:
            found = False
        _sessions[key] = found
    return bool(found)


def _started(builder: Any, conf: dict[str, str], env: str, settings: LocalEngine | ClusterEngine) -> Any:
    """`builder`'s session with `conf`; ConfigError naming the engine when Spark cannot start."""
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:
        raise ConfigError(f"{describe_engine(env, settings)} cannot start: {type(exc).__name__}: "
                          f"{_first_line(exc)}", hint=_java_hint()) from None


def _static(settings: LocalEngine) -> tuple[Any, ...]:
    return (settings.master or f"local[{settings.cores}]", settings.memory, tuple(settings.packages))


def _alive(session: Any) -> bool:
    try:
        return session.sparkContext._jsc is not None
    except Exception:
        return False


def _apply_runtime_conf(session: Any, conf: dict[str, Any]) -> None:
    for key, value in conf.items():
        try:
            if session.conf.get(key, None) != _text(value):
                session.conf.set(key, _text(value))
        except Exception:
            pass  # a static setting of a running session: it keeps the value it started with


def _check_java(env: str, settings: LocalEngine) -> None:
    """ConfigError before launching when no Java can be found (Spark's own failure is a page of shell noise)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        if not os.access(os.path.join(home, "bin", "java"), os.X_OK):
            raise ConfigError(f"{describe_engine(env, settings)} cannot start: JAVA_HOME={home} has no bin/java",
                              hint=_java_hint())
    elif shutil.which("java") is None:
        raise ConfigError(f"{describe_engine(env, settings)} cannot start: Java is not installed (no java on PATH)",
                          hint=_java_hint())


def _java_hint() -> str:
    return "local Spark needs Java 17 or 21: install it (e.g. apt-get install openjdk-17-jre-headless) or set " \
           "JAVA_HOME; or use engine = \"connect\" with a Spark Connect server"


def _log4j_file() -> str:
    from dbnd_prefect.layout import cache_dir

    path = cache_dir() / "spark" / "log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staging.write_text(_LOG4J)
        os.replace(staging, path)
    return path.as_uri()


def _connect_session(env: str, settings: ConnectEngine) -> Any:
    key = ("connect", settings.remote)
    session = _sessions.get(key)
    if session is not None and not getattr(session, "is_stopped", False):
        return session
    _probe(env, settings)
    from pyspark.sql.connect.session import SparkSession as RemoteSparkSession

    try:
        session = RemoteSparkSession.builder.remote(settings.remote).getOrCreate()
        for name, value in settings.conf.items():
            session.conf.set(name, _text(value))
    except Exception as exc:
        raise ConfigError(f"{describe_engine(env, settings)} refused the session: {type(exc).__name__}: "
                          f"{_first_line(exc)}", hint=f"check env.{env}.spark.remote and the server's log") from None
    _sessions[key] = session
    return session


def _probe(env: str, settings: ConnectEngine | DatabricksEngine, remote: str | None = None) -> None:
    """ConfigError at once when nothing listens at the Connect address (the client would retry for minutes)."""
    address = remote or getattr(settings, "remote", "")
    parsed = urllib.parse.urlsplit(address.split(";", 1)[0].replace("sc://", "http://", 1))
    host, port = parsed.hostname or "localhost", parsed.port or 15002
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_PROBE_SECONDS):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        fix = f"check the databricks_instance of block {settings.credentials_block!r} and that cluster " \
              f"{settings.cluster_id} runs" if isinstance(settings, DatabricksEngine) else \
              f"start the Spark Connect server (sbin/start-connect-server.sh) or fix env.{env}.spark.remote"
        raise ConfigError(f"{describe_engine(env, settings)} cannot be reached: {host}:{port}: {reason}",
                          hint=fix) from None


def _databricks_session(env: str, settings: DatabricksEngine) -> Any:
    """A Databricks Connect session on the profile's cluster, with the instance and token of its credentials
    block, opened by a Spark Connect address (`sc://INSTANCE/;token=...;x-databricks-cluster-id=...`)."""
    if settings.tasks != "connect":
        raise ConfigError(f"{describe_engine(env, settings)} sends Spark tasks (a Spark DataFrame parameter or output) "
                          "to the cluster as jobs; this process has no Spark session of its own there",
                          hint=f"give the task a Spark DataFrame parameter or output, or set env.{env}.spark.tasks = "
                               '"connect" to run Spark here through Databricks Connect')
    try:
        from databricks.connect import DatabricksSession  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(f"{describe_engine(env, settings)} needs databricks-connect, which is not installed",
                          hint="pip install databricks-connect (matching your cluster's runtime), in a venv "
                               "without pyspark: it brings its own") from None
    if not settings.credentials_block or not settings.cluster_id:
        raise ConfigError(f"{describe_engine(env, settings)} needs credentials_block and cluster_id for a "
                          "Databricks Connect session", hint=f"set env.{env}.spark.credentials_block and cluster_id")
    key = ("databricks", settings.credentials_block, settings.cluster_id)
    session = _sessions.get(key)
    if session is None:
        remote = _databricks_address(env, settings)
        _probe(env, settings, remote)
        try:
            session = DatabricksSession.builder.remote(remote).getOrCreate()
            for name, value in settings.conf.items():
                session.conf.set(name, _text(value))
        except Exception as exc:
            raise ConfigError(f"{describe_engine(env, settings)} refused the session: {type(exc).__name__}: "
                              f"{_first_line(exc)}", hint=f"check the block {settings.credentials_block!r} and "
                                                         f"env.{env}.spark.cluster_id") from None
        _sessions[key] = session
    return session


def _databricks_address(env: str, settings: DatabricksEngine) -> str:
    """The Spark Connect address of the profile's cluster (its token remembered as a secret, never shown)."""
    from prefect_databricks import DatabricksCredentials  # type: ignore[import-not-found]

    from dbnd_prefect.redaction import remember_secret

    try:
        credentials = DatabricksCredentials.load(settings.credentials_block)
    except Exception as exc:
        raise ConfigError(f"env.{env}.spark.credentials_block = {settings.credentials_block!r} cannot be loaded: "
                          f"{_first_line(exc)}", hint="save it first: DatabricksCredentials(databricks_instance=..., "
                                                      "token=...).save(NAME)") from None
    if credentials.token is None:
        raise ConfigError(f"the block {settings.credentials_block!r} has no token, which Databricks Connect needs",
                          hint="save the DatabricksCredentials block with a personal access token")
    token = credentials.token.get_secret_value()
    remember_secret(token)
    instance = credentials.databricks_instance.removeprefix("https://").rstrip("/")
    host = urllib.parse.urlsplit(f"//{instance}").hostname or ""
    port = "" if ":" in instance else ":443"
    tls = "" if host in ("localhost", "127.0.0.1") else ";use_ssl=true"
    return f"sc://{instance}{port}/;token={token};x-databricks-cluster-id={settings.cluster_id}{tls}"


def stop_sessions() -> None:
    """Stop every session this process started (tests; a long-lived process switching engines)."""
    global _local_settings
    with _lock:
        for session in _sessions.values():
            try:
                session.stop()
            except Exception:
                pass
        _sessions.clear()
        _local_settings = None


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _first_line(exc: BaseException) -> str:
    from dbnd_prefect.redaction import one_line

    return one_line(exc, 300)
