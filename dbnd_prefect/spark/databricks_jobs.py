"""A whole Python script run as a Databricks job (runs/submit), through prefect-databricks.

    [env.dbx.spark]
    engine = "databricks"
    credentials_block = "dbx-prod"          # a prefect-databricks DatabricksCredentials block
    new_cluster = { spark_version = "15.4.x-scala2.12", node_type_id = "i3.xlarge", num_workers = 2 }
    # or: cluster_id = "0923-164208-meows279"  (an existing cluster)
    libraries = [{ pypi = { package = "dbnd-prefect" } }]

`submit_script("jobs/train.py", {"alpha": 0.3}, env="dbx")` uploads the script to the workspace
(`workspace_dir`, named by its content hash), submits one `spark_python_task` with the parameters as
`--set alpha=0.3` arguments, waits for the run with prefect-databricks'
`jobs_runs_submit_and_wait_for_completion` flow and returns its result state and output. The request is
checked against prefect-databricks' models first: a bad setting is one ConfigError naming the key. The
token stays inside the block: it is never part of the request, a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Mapping

from pydantic import BaseModel, ValidationError

from dbnd_prefect.errors import ConfigError, DbndError, ParameterError, TaskFailedError, suggest
from dbnd_prefect.spark.settings import DatabricksEngine

_TASK_KEY = re.compile(r"[^\w-]")
LAUNCHER_FAILURE = "dbnd: "  # how a task's launcher (databricks_launcher.py) starts its last line when it fails


class DatabricksRunFailed(TaskFailedError):
    """A submitted Databricks run that ended in another state than SUCCESS."""


@dataclasses.dataclass(frozen=True)
class ScriptRun:
    """A finished Databricks run of a script."""

    run_id: int
    result_state: str  # SUCCESS (a run ending otherwise raises DatabricksRunFailed)
    python_file: str  # the script's workspace path
    run_page_url: str | None
    logs: str | None  # the script's stdout/stderr as Databricks kept it (runs/get-output `logs`)


def script_arguments(parameters: Mapping[str, Any] | None) -> list[str]:
    """`--set NAME=VALUE` arguments: texts as they are, other values as JSON (`true`, `3`, `[1, 2]`)."""
    arguments: list[str] = []
    for name, value in (parameters or {}).items():
        if not isinstance(name, str) or not name or "=" in name:
            raise ParameterError(f"script parameter name {name!r} must be a non-empty text without '='")
        arguments += ["--set", f"{name}={value if isinstance(value, str) else json.dumps(value)}"]
    return arguments


def workspace_path(script: Path, content: bytes, settings: DatabricksEngine) -> str:
    """Where the script is uploaded: `workspace_dir/NAME-HASH.py`, so each version has its own file."""
    digest = hashlib.sha256(content).hexdigest()[:12]
    return f"{settings.workspace_dir.rstrip('/')}/{script.stem}-{digest}.py"


def build_task(env: str, settings: DatabricksEngine, python_file: str, arguments: list[str], task_key: str) -> Any:
    """The runs/submit task (a prefect-databricks `RunSubmitTaskSettings`) running `python_file` with
    `arguments` on the profile's cluster; ConfigError naming `env.ENV.spark.KEY` when a setting does not fit
    the models."""
    from prefect_databricks.models.jobs import Library, NewCluster, RunSubmitTaskSettings, SparkPythonTask

    if settings.cluster_id and settings.new_cluster:
        raise ConfigError(f"env.{env}.spark sets both cluster_id and new_cluster: a Databricks job runs on one",
                          hint=f"remove env.{env}.spark.cluster_id or env.{env}.spark.new_cluster")
    if not settings.cluster_id and not settings.new_cluster:
        raise ConfigError(f"env.{env}.spark names no cluster for Databricks jobs",
                          hint=f"set env.{env}.spark.cluster_id (an existing cluster) or env.{env}.spark.new_cluster "
                               "(a job cluster: spark_version, node_type_id, num_workers)")
    cluster = _checked(env, "new_cluster", NewCluster, settings.new_cluster) if settings.new_cluster else None
    libraries = [_checked(env, f"libraries.{index}", Library, library)
                 for index, library in enumerate(settings.libraries)] or None
    return RunSubmitTaskSettings(
        task_key=task_key,
        existing_cluster_id=settings.cluster_id,
        new_cluster=cluster,
        libraries=libraries,
        spark_python_task=SparkPythonTask(python_file=python_file, parameters=arguments),
    )


def _checked(env: str, key: str, model: type[BaseModel], value: Any) -> BaseModel:
    """`value` as `model`; ConfigError on a wrong type or on an unknown key close to a known one (a typo).

    prefect-databricks' models accept unknown keys (the API grows faster than they do): an unknown key
    without a close known one is passed on to Databricks as it is.
    """
    if not isinstance(value, Mapping):
        raise ConfigError(f"invalid env.{env}.spark.{key}: a table is needed, not {type(value).__name__}",
                          hint=f"fix env.{env}.spark.{key}")
    try:
        checked = model(**value)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join([key, *(str(part) for part in first["loc"])])
        raise ConfigError(f"invalid env.{env}.spark.{where}: {first['msg']}",
                          hint=f"see the Databricks Jobs API ({model.__name__}) for env.{env}.spark.{key}") from None
    _check_typos(env, key, checked)
    return checked


def _check_typos(env: str, key: str, value: Any) -> None:
    if isinstance(value, BaseModel):
        known = list(type(value).model_fields)
        for extra in (value.model_extra or {}):
            close = suggest(extra, known)
            if close:
                raise ConfigError(f"unknown key env.{env}.spark.{key}.{extra}{close}",
                                  hint=f"{type(value).__name__} keys: {', '.join(known)}")
        for name in type(value).model_fields:
            _check_typos(env, f"{key}.{name}", getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_typos(env, f"{key}.{index}", item)


def databricks_settings(env: str | None = None, config: Any = None) -> tuple[str, DatabricksEngine]:
    """(environment, its `[env.ENV.spark]` settings), `env` defaulting to the active one (`run.env`);
    ConfigError unless its engine is `databricks` with a credentials block."""
    from dbnd_prefect.config.resolved import active_profile
    from dbnd_prefect.config.profiles import resolve_profile

    if config is None:
        from dbnd_prefect.config import current_config

        config = current_config()
    resolved = resolve_profile(config, env) if env else active_profile(config)
    env = resolved.name
    settings = resolved.plugin_setting("spark")
    if not isinstance(settings, DatabricksEngine):
        raise ConfigError(f"environment '{env}' runs Spark engine '{settings.engine}', not 'databricks': "
                          "it cannot submit Databricks jobs", hint=f'set env.{env}.spark.engine = "databricks"')
    if not settings.credentials_block:
        raise ConfigError(f"env.{env}.spark.credentials_block is needed to submit Databricks jobs",
                          hint="save a prefect-databricks DatabricksCredentials block and name it there")
    return env, settings


def submit_script(script: str | Path, parameters: Mapping[str, Any] | None = None, env: str | None = None, *,
                  run_name: str | None = None, config: Any = None) -> ScriptRun:
    """Run the Python file `script` as a Databricks job on profile `env`'s cluster (default: the active
    profile's) and wait for it.

    Returns the finished run (its output in `logs`); DatabricksRunFailed when it ends otherwise than
    SUCCESS, ConfigError for a bad setting, a missing block or a workspace that cannot be reached.
    """
    from prefect.utilities.asyncutils import run_coro_as_sync

    return run_coro_as_sync(submit_script_async(script, parameters, env, run_name=run_name, config=config))


async def submit_script_async(script: str | Path, parameters: Mapping[str, Any] | None = None, env: str | None = None,
                              *, run_name: str | None = None, config: Any = None) -> ScriptRun:
    """`submit_script` for async code."""
    env, settings = databricks_settings(env, config)
    path = Path(script)
    if not path.is_file():
        raise ParameterError(f"script {str(script)!r} is not a file", hint="give the path of a Python script")
    content = path.read_bytes()
    python_file = workspace_path(path, content, settings)
    task = build_task(env, settings, python_file, script_arguments(parameters), task_key(path.stem))
    credentials = await load_credentials(env, settings)
    name = run_name or f"dbnd {path.name}"
    async with reaching(env, settings, credentials):
        await upload(credentials, python_file, content)
        return await run_and_wait(credentials, task, name, settings)


def task_key(name: str) -> str:
    """A runs/submit task key made of `name` (letters, digits, `_` and `-`, at most 100)."""
    return _TASK_KEY.sub("_", name)[:100] or "task"


@contextlib.asynccontextmanager
async def reaching(env: str, settings: DatabricksEngine, credentials: Any) -> AsyncIterator[None]:
    """Translate a failure to reach the workspace inside the block into one ConfigError (DbndErrors pass)."""
    try:
        yield
    except DbndError:
        raise
    except Exception as exc:
        raise _reach_error(env, settings, credentials.databricks_instance, exc) from None


async def load_credentials(env: str, settings: DatabricksEngine) -> Any:
    """The profile's DatabricksCredentials block, its secrets remembered for redaction; ConfigError if it
    cannot be loaded."""
    from prefect_databricks import DatabricksCredentials

    from dbnd_prefect.redaction import one_line, remember_secret

    try:
        credentials = await DatabricksCredentials.aload(settings.credentials_block)
    except Exception as exc:
        raise ConfigError(f"env.{env}.spark.credentials_block = {settings.credentials_block!r} cannot be loaded: "
                          f"{one_line(exc, 200)}",
                          hint="save it first: DatabricksCredentials(databricks_instance=..., token=...).save(NAME)"
                          ) from None
    for secret in (credentials.token, credentials.client_secret):
        if secret is not None:
            remember_secret(secret.get_secret_value())
    return credentials


async def exists(credentials: Any, path: str) -> bool:
    """Whether the workspace holds an object at `path` (workspace/get-status)."""
    from prefect_databricks.rest import execute_endpoint

    response = await execute_endpoint.fn("/2.0/workspace/get-status", credentials, http_method="get",
                                         params={"path": path})
    if response.status_code == 404:
        return False
    response.raise_for_status()
    return True


async def upload(credentials: Any, python_file: str, content: bytes) -> None:
    """Write `content` to the workspace file `python_file` (its folder made first)."""
    from prefect_databricks.rest import execute_endpoint

    folder = python_file.rsplit("/", 1)[0] or "/"
    response = await execute_endpoint.fn("/2.0/workspace/mkdirs", credentials, http_method="post",
                                         json={"path": folder})
    response.raise_for_status()
    response = await execute_endpoint.fn("/2.0/workspace/import", credentials, http_method="post", json={
        "path": python_file, "format": "AUTO", "overwrite": True,
        "content": base64.b64encode(content).decode("ascii")})
    response.raise_for_status()


async def run_and_wait(credentials: Any, task: Any, run_name: str, settings: DatabricksEngine,
                       on_submitted: Callable[[dict[str, Any]], None] | None = None) -> ScriptRun:
    """Submit `task` as a one-time run (runs/submit), wait for its end and return it; DatabricksRunFailed
    naming the run, its state, its reason and its last output line when it ends otherwise than SUCCESS."""
    from prefect_databricks.flows import (
        DatabricksJobInternalError,
        DatabricksJobRunTimedOut,
        DatabricksJobSkipped,
        DatabricksJobTerminated,
        jobs_runs_submit_and_wait_for_completion,
    )
    from prefect_databricks.jobs import jobs_runs_get

    from dbnd_prefect.redaction import one_line

    submitted: dict[str, Any] = {}

    def handler(response: dict[str, Any]) -> None:
        submitted.update(response)
        if on_submitted is not None:
            on_submitted(response)

    try:
        _, metadata = await jobs_runs_submit_and_wait_for_completion(
            databricks_credentials=credentials, tasks=[task], run_name=run_name,
            max_wait_seconds=settings.max_wait_seconds, poll_frequency_seconds=settings.poll_seconds,
            return_metadata=True, job_submission_handler=handler)
    except DatabricksJobTerminated:
        metadata = await jobs_runs_get.fn(run_id=submitted["run_id"], databricks_credentials=credentials)
    except (DatabricksJobSkipped, DatabricksJobInternalError, DatabricksJobRunTimedOut) as exc:
        raise DatabricksRunFailed(f"Databricks run {submitted.get('run_id')} '{run_name}': {one_line(exc)}",
                                  hint="see the run in the Databricks workspace") from None
    return await _finished(credentials, metadata, run_name, task)


async def submit_and_poll(credentials: Any, task: Any, run_name: str, env: str, settings: DatabricksEngine
                          ) -> ScriptRun:
    """`run_and_wait` with no flow run of its own (runs/submit, then runs/get polled here): for a task run's
    body. An interrupted caller (Ctrl-C, SIGTERM) or a run past `max_wait_seconds` cancels the Databricks run."""
    from prefect_databricks.jobs import jobs_runs_cancel, jobs_runs_get, jobs_runs_submit

    from dbnd_prefect.runtime.exit_hooks import interrupted

    response = await jobs_runs_submit.fn(databricks_credentials=credentials, tasks=[task], run_name=run_name)
    run_id = response["run_id"]
    deadline = time.monotonic() + settings.max_wait_seconds
    while True:
        metadata = await jobs_runs_get.fn(run_id=run_id, databricks_credentials=credentials)
        life = (metadata.get("state") or {}).get("life_cycle_state")
        if life in _ENDED:
            return await _finished(credentials, metadata, run_name, task)
        why = "the calling run was interrupted" if interrupted() else (
            f"it was still {life} after env.{env}.spark.max_wait_seconds = {settings.max_wait_seconds}"
            if time.monotonic() > deadline else None)
        if why:
            await jobs_runs_cancel.fn(databricks_credentials=credentials, run_id=run_id)
            raise DatabricksRunFailed(f"Databricks run {run_id} '{run_name}' was cancelled: {why}",
                                      hint="see the run in the Databricks workspace")
        await asyncio.sleep(settings.poll_seconds)


_ENDED = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


async def _finished(credentials: Any, metadata: dict[str, Any], run_name: str, task: Any) -> ScriptRun:
    """The ended run `metadata` describes, with its output; DatabricksRunFailed unless it succeeded."""
    from prefect_databricks.jobs import jobs_runs_get_output

    (task_run,) = metadata["tasks"]
    output = await jobs_runs_get_output.fn(run_id=task_run["run_id"], databricks_credentials=credentials)
    state = metadata.get("state") or {}
    result = state.get("result_state") or state.get("life_cycle_state") or "UNKNOWN"
    run = ScriptRun(run_id=metadata["run_id"], result_state=result,
                    python_file=task.spark_python_task.python_file,
                    run_page_url=metadata.get("run_page_url"), logs=output.get("logs"))
    if result != "SUCCESS":
        task_state = task_run.get("state") or {}
        reason = output.get("error") or task_state.get("state_message") or state.get("state_message")
        error = DatabricksRunFailed(_failure(run_name, run, reason or "no message"))
        error.run = run  # type: ignore[attr-defined]
        raise error
    return run


def _failure(run_name: str, run: ScriptRun, reason: str) -> str:
    from dbnd_prefect.redaction import one_line

    last = [line for line in (run.logs or "").splitlines() if line.strip()][-1:]
    url = f" ({run.run_page_url})" if run.run_page_url else ""
    head = f"Databricks run {run.run_id} '{run_name}'{url} ended {run.result_state}"
    if last and last[0].startswith(LAUNCHER_FAILURE):  # a task's launcher said what failed: that is the reason
        return f"{head}: {one_line(last[0].removeprefix(LAUNCHER_FAILURE), 600)}"
    tail = f"; last output line: {one_line(last[0], 200)}" if last else ""
    return f"{head}: {one_line(reason, 300)}{tail}"


def _reach_error(env: str, settings: DatabricksEngine, instance: str, exc: Exception) -> DbndError:
    from dbnd_prefect.redaction import one_line

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return ConfigError(f"the Databricks workspace {instance} refused the credentials of block "
                           f"{settings.credentials_block!r} (HTTP {status})",
                           hint="renew the token or service principal in that DatabricksCredentials block")
    what = f"HTTP {status}: " if status else ""
    return ConfigError(f"Databricks job submission to {instance} (environment '{env}') failed: {what}"
                       f"{one_line(exc, 300)}",
                       hint=f"check the block {settings.credentials_block!r} (databricks_instance) and env.{env}.spark")


__all__ = ["DatabricksRunFailed", "ScriptRun", "build_task", "databricks_settings", "exists", "load_credentials",
           "reaching", "run_and_wait", "script_arguments", "submit_and_poll", "submit_script", "submit_script_async", "task_key",
           "upload", "workspace_path"]
