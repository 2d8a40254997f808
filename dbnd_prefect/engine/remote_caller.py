"""Tasks that run in their own environment, in the caller: `@task(task_env="k8s")` submitted as a deployment run.

A call of such a task inside a run whose environment is another one is bound as a call in that environment
(its signature, data root and cache record are the profile's, as for `dbnd run TASK --env NAME`). A stored
version is reused without submitting anything. Otherwise the task run's body, in the caller's process,
submits one run of the generic flow `dbnd-task` to the profile's work pool (`run_deployment`, linked under
the calling task run) with the task's identity, its arguments as JSON values and target URIs (never local
bytes), the caller's signature and run settings, and waits. The worker imports the task from the project
and runs it as a Prefect task of that flow run, through the usual body (load, call, store, manifest,
cache record); the caller then reads the stored version back from the profile's data root.

Before anything runs: the environment exists (closest name otherwise), its work pool exists on the server
with its type, and a profile that runs off this machine has a remote data root. When a call is submitted,
a local input file is uploaded to the profile's root (content-addressed) if the profile runs off this
machine; a local folder or a `memory://` input it cannot reach is refused, naming the parameter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbnd_prefect.config.reach import check_data_reachable, mounted, remote_compute
from dbnd_prefect.config.work_pools import profile_job_variables
from dbnd_prefect.definitions.definition import TaskDefinition
from dbnd_prefect.definitions.introspect import called_tasks
from dbnd_prefect.engine.task_inputs import as_input_error
from dbnd_prefect.errors import ConfigError, DbndError, TaskFailedError
from dbnd_prefect.outputs import OutputRef, TaskOutputs
from dbnd_prefect.redaction import redact
from dbnd_prefect.runtime.exit_hooks import cancel_flow_run, interrupted
from dbnd_prefect.runtime.prefect_api import choose_api, use_api
from dbnd_prefect.runtime.work_pool_check import check_work_pool
from dbnd_prefect.targets import Target, split_uri
from dbnd_prefect.targets.uploads import store_value, upload_file

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext

FLOW_NAME = "dbnd-task"  # the generic flow a work pool runs for each submitted call (engine/remote_worker.py)
# The deployments name this module path: the worker imports it (`dbnd_prefect.remote_tasks` re-exports the flow)
ENTRYPOINT = "dbnd_prefect.remote_tasks.dbnd_task"
OUTPUT, STORED = "__dbnd_output__", "__dbnd_stored__"  # how an argument says: an upstream output, a stored value
POLL_SECONDS = 1.0  # how often the caller asks whether the submitted run has ended (Prefect's default: 5 s)
WAIT_WARNING_SECONDS = 60.0  # a run no worker has taken by then gets one warning

# Small caches of what was checked or created on a Prefect server (not per run: a pool or deployment stays)
_checked: set[tuple[str, str | None]] = set()
_deployments: dict[str, Any] = {}


def run_in_env(parent: "RunContext", env: str) -> "RunContext":
    """The run a call in environment `env` belongs to, made from `parent`'s configuration with `run.env = env`
    (once per parent run): the profile's data root, record store and signature environment."""
    found = parent.env_runs.get(env)
    if found is None:
        from dbnd_prefect.runtime.session import open_run_from

        config = parent.config.with_layer("set", {"run": {"env": env}}, f"@task(task_env={env!r})")
        found = open_run_from(config, parent.command_line)
        found.run_date = parent.run_date
        found.caller_env = parent.env  # travels with the call (a Dask worker)
        parent.env_runs[env] = found
    return found


def caller_env(call: "BoundCall", current: "RunContext | None") -> str | None:
    """The environment the task body of `call` is running in: the run in effect, or, where none is (a task
    runner's worker process), the one whose run made the call."""
    if current is not None:
        return current.env
    return call.run.caller_env or call.run.env if call.run is not None else None


def tasks_with_env(obj: Any) -> list[Any]:
    """The tasks `obj` (a task or pipeline) runs that name an environment of their own."""
    if isinstance(obj, TaskDefinition):
        return [obj] if obj.task_env else []
    found = obj.__dict__.get("_tasks_with_env")
    if found is None:
        found = obj.__dict__["_tasks_with_env"] = [t for t in called_tasks(obj) if getattr(t, "task_env", None)]
    return found


def check_task_envs(obj: Any, run: "RunContext") -> None:
    """Before a run of `obj` with `config`: each task of it with another `task_env` can be submitted there.

    ConfigError naming the task for an unknown environment (with the closest name), a work pool missing
    on the Prefect server or of another type, or a profile that runs off this machine with a local data root.
    """
    tasks = tasks_with_env(obj)
    for task in tasks:
        if task.task_env != run.env:
            try:
                check_env(run.config, task.task_env)
            except DbndError as exc:
                raise exc.add_context(f"task '{task.name}' (task_env={task.task_env!r})", task=task.name) from None


def check_env(config: Any, env: str) -> Any:
    """The resolved profile `env` after checking it can take submitted task runs (see `check_task_envs`)."""
    from dbnd_prefect.config import known_envs, resolve_run_config
    from dbnd_prefect.config.envs import unknown_env

    if env not in known_envs(config):
        raise unknown_env(env, known_envs(config))
    in_env = resolve_run_config(config.with_layer("set", {"run": {"env": env}}, f"task_env {env}"))
    resolved, settings = in_env.profile, in_env.settings
    check_data_reachable(resolved, settings.data_root, settings.storage_block)
    api_url = use_api(choose_api(settings.api))
    pool = resolved.profile.work_pool
    if (f"{env}:{pool.name}:{pool.type}", api_url) not in _checked:
        check_work_pool(pool.name, pool.type, env, api_url, consequence="nothing submitted")
        _checked.add((f"{env}:{pool.name}:{pool.type}", api_url))
    return resolved


def submit(call: "BoundCall", parent: "RunContext") -> "TaskOutputs":
    """Run `call` (bound in its task's environment) as a deployment run on that environment's work pool,
    wait for it, and return the stored version it made. TaskFailedError when the run does not complete."""
    from prefect.deployments import run_deployment

    from dbnd_prefect.versioning.verify import stored_version

    run = call.run
    task = call.task
    env = task.task_env
    try:
        resolved = check_env(run.config, env)
    except DbndError as exc:
        raise exc.add_context(f"task '{task.name}' (task_env={env!r})", task=task.name) from None
    arguments = encode_arguments(call, resolved, f"the flow run that task_env={env!r} submits")
    deployment_id = ensure_deployment(resolved, env)
    flow_run = run_deployment(
        deployment_id,
        parameters={
            "task": task.task_id,
            "module": getattr(task.func, "__module__", None) or "",
            "arguments": arguments,
            "signature": {"digest": call.signature.digest, **call.signature.parts()},
            "settings": run_settings(run),
            "run_date": run.run_date.isoformat(),
            "root": _project_root(task),
            "root_flow_run_id": parent.flow_run_id,
            "run_name": call.run_name,
        },
        flow_run_name=f"{task.name}-{call.signature.short}",
        timeout=0,  # created (linked under the calling task run in the UI), waited for below
        as_subflow=True,
        tags=["dbnd", f"env:{env}"],
    )
    flow_run = _wait(flow_run, task.name, resolved.profile.work_pool.name)
    state = flow_run.state
    if state is None or not state.is_completed():
        message = redact((state.message if state else None) or f"its flow run ended {state.name if state else 'without a state'}")
        error = TaskFailedError(f"task '{task.name}' failed in environment '{env}' (flow run {flow_run.name}, "
                                f"{flow_run.id}): {message}", hint="its logs are in the flow run in the Prefect UI")
        error.task_name = task.name  # type: ignore[attr-defined]
        raise error
    reason, outputs = stored_version(run.storage, call.digest, run.verify == "full")
    if reason is not None:
        raise DbndError(f"task '{task.name}' completed in environment '{env}' (flow run {flow_run.id}), but its "
                        f"outputs cannot be read from {run.data_root}: {reason}",
                        hint=f"the worker and this process must reach the same data root (env.{env}.data_root)")
    return outputs


def _wait(flow_run: Any, task_name: str, pool: str) -> Any:
    """`flow_run` once it has ended; says once (a warning in the task run's log) when no worker has taken it
    after WAIT_WARNING_SECONDS, since a pool nobody polls would make the caller wait silently. When the caller's
    run is interrupted (runtime/exit_hooks.py), the submitted run is cancelled and TaskFailedError raised."""
    import time

    from prefect.client.orchestration import get_client

    started = time.monotonic()
    warned = False
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(flow_run.id)
            state = flow_run.state
            if state is not None and state.is_final():
                return flow_run
            if interrupted():  # Ctrl-C or SIGTERM on the caller: the submitted run is cancelled too
                cancel_flow_run(flow_run.id, "the calling run was interrupted", on_worker=True)
                raise TaskFailedError(f"task '{task_name}': interrupted; its flow run {flow_run.name} in work pool "
                                      f"'{pool}' was cancelled", task=task_name)
            if not warned and state is not None and state.is_scheduled() \
                    and time.monotonic() - started > WAIT_WARNING_SECONDS:
                warned = True
                _log().warning("Task '%s': flow run %s has waited %.0f s for a worker of work pool '%s' (is one "
                               "running? prefect worker start --pool %s)", task_name, flow_run.name,
                               time.monotonic() - started, pool, pool)
            time.sleep(POLL_SECONDS)


def _log() -> Any:
    import logging

    import prefect

    try:
        return prefect.get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run context: the library's own logger
        return logging.getLogger("dbnd_prefect")


def run_settings(run: "RunContext") -> dict[str, Any]:
    """The run settings a run elsewhere (a worker's, a cluster's) takes from the caller's (its configuration
    layer "set")."""
    settings = run.settings
    values: dict[str, Any] = {"run.env": run.env}
    if settings.storage_block:
        values["run.storage_block"] = settings.storage_block
    else:
        values["run.data_root"] = run.data_root  # resolved here: a relative root means the caller's folder
    if run.task_version is not None:
        values["run.task_version"] = run.task_version  # `now` already resolved: the same for the whole run
    if run.target_date is not None:
        values["run.task_target_date"] = run.target_date.isoformat()
    values["run.verify"] = run.verify
    return values


def _project_root(task: Any) -> str:
    """The task's project root relative to this process's working directory (the worker's, after its pull step)."""
    import inspect

    from dbnd_prefect.identity import project_root

    source = inspect.getsourcefile(task.func)
    if not source:
        return "."
    return os.path.relpath(project_root(source), os.getcwd())


def encode_arguments(call: "BoundCall", resolved: Any, carrier: str) -> dict[str, Any]:
    """The arguments of `call` as JSON values a run in profile `resolved` decodes (engine/remote_worker.py):
    see `_encoded`. InputError naming the parameter for a value holding a credential, since `carrier` (what
    stores them, e.g. "the Databricks job run") would keep it."""
    return {name: _without_credentials(call, name, _encoded(call, name, value, resolved), carrier)
            for name, value in call.arguments.items()}


def _encoded(call: "BoundCall", name: str, value: Any, resolved: Any) -> Any:
    """One argument as the flow run's parameter: a JSON value, an upstream output by its stored URI, a data
    input by a URI the profile reaches, anything else stored content-addressed under the profile's root."""
    task = call.task
    spec = task.param_map.get(name)
    if isinstance(value, OutputRef):
        source = value.source
        if not isinstance(source, TaskOutputs):
            source = source.result()
        stored = source.stored.get(value.name)
        if stored is None:
            if value.name in source.names and source.get(value.name) is None:
                return None
            raise _input_error(call, name, value, ConfigError(
                f"it is output '{value.name}' of task '{source.task_name}', which is kept in memory only "
                f"(versioned=False), and task_env={task.task_env!r} runs in another process",
                hint=f"make '{source.task_name}' versioned, so its outputs are stored where the worker reads them"))
        return {OUTPUT: {"task": source.task_name, "signature": source.signature, "name": value.name,
                          "uri": _reachable(call, name, stored.uri, resolved), "format": stored.format,
                          "type_key": stored.type_key, "checksum": stored.checksum, "bytes": stored.bytes}}
    if isinstance(value, TaskOutputs):
        value = value.value()
    if spec is not None and spec.is_data and isinstance(value, (str, os.PathLike, Target)):
        return _reachable(call, name, getattr(value, "uri", None) or os.fspath(value), resolved)
    plain = _as_json(spec, task.name, value)
    if plain is not _NOT_JSON:
        return plain
    return {STORED: store_value(call.run.data_root, value)}


_NOT_JSON = object()


def _as_json(spec: Any, task_name: str, value: Any) -> Any:
    """`value` as a JSON value the worker turns back into an equal one (coerced by its parameter's type), or
    `_NOT_JSON`."""
    from pydantic_core import to_jsonable_python

    from dbnd_prefect.definitions.coerce import coerce

    try:
        plain = to_jsonable_python(value)
        json.dumps(plain)
    except Exception:  # noqa: BLE001 - whatever cannot be written as JSON goes by storage
        return _NOT_JSON
    if plain == value and type(plain) is type(value):
        return plain
    if spec is None or spec.is_data:
        return _NOT_JSON
    try:
        return plain if coerce(task_name, spec, plain) == value else _NOT_JSON
    except DbndError:
        return _NOT_JSON


def _reachable(call: "BoundCall", name: str, uri: str, resolved: Any) -> str:
    """`uri` as the profile's runs reach it: a local file uploaded to the profile's root (content-addressed)
    when the profile runs off this machine; other local paths made absolute; InputError when it cannot."""
    protocol, path = split_uri(uri)
    if protocol == "memory":
        raise _input_error(call, name, uri, ConfigError(
            "a memory:// URI lives in this process only, and the task runs in another",
            hint=f"pass a file or a URI the environment '{resolved.name}' reaches"))
    if protocol != "file":
        return uri
    why = remote_compute(resolved)
    if why is None or mounted(path, resolved):
        return path
    if os.path.isfile(path):
        return upload_file(Path(path), call.run.data_root)
    raise _input_error(call, name, uri, ConfigError(
        f"'{path}' is a folder on this machine, but environment '{resolved.name}' runs work off it ({why})",
        hint="upload the folder and pass its URI (s3://, gs://, az://)"))


def _without_credentials(call: "BoundCall", name: str, encoded: Any, carrier: str) -> Any:
    """`encoded`, unless it holds a credential (a secret-named parameter, a password in a URI, a signed URL,
    a key): what carries the arguments (a flow run's parameters, a Databricks run's) stores them, so such a value
    is refused, naming the parameter."""
    from dbnd_prefect.history.manifest import mask_secret_values

    if mask_secret_values({name: encoded}) == {name: encoded}:
        return encoded
    raise _input_error(call, name, "(a credential)", ConfigError(
        f"its value holds a credential, which would be stored with the parameters of {carrier}",
        hint="give the credential to the runs there through their environment (the profile's env, a storage "
             "block, cluster secrets or the cloud's credential chain) and pass the value without it"))


def _input_error(call: "BoundCall", name: str, value: Any, error: DbndError) -> DbndError:
    return as_input_error(error, call.task.name, name, redact(str(getattr(value, "uri", value))))


def ensure_deployment(resolved: Any, env: str) -> Any:
    """The id of the `dbnd-task` deployment for profile `env` (created or updated once per process): the
    profile's work pool and job variables plus `DBND__RUN__ENV`, running in this project's folder."""
    import xxhash
    from prefect.client.orchestration import get_client
    from prefect.flows import load_flow_from_entrypoint
    from prefect.settings import get_current_settings
    from prefect.utilities.callables import parameter_schema

    pool = resolved.profile.work_pool
    job_variables = profile_job_variables(resolved, env)
    cwd = os.getcwd()
    # a process pool runs here, a docker pool that mounts this folder at its path too; elsewhere the image
    # holds the project in its working directory
    here = pool.type == "process" or (pool.type == "docker" and mounted(cwd, resolved))
    pull_steps = [{"prefect.deployments.steps.set_working_directory": {"directory": cwd}}] if here else []
    shape = json.dumps({"pool": pool.name, "job_variables": job_variables, "pull_steps": pull_steps},
                       sort_keys=True, default=str)
    name = f"{env}-{xxhash.xxh3_64_hexdigest(shape.encode())[:10]}"
    key = f"{get_current_settings().api.url}|{name}"
    found = _deployments.get(key)
    if found is None:
        worker_flow = load_flow_from_entrypoint(ENTRYPOINT)  # as `prefect deploy` loads a deployment's flow
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow(worker_flow)
            found = client.create_deployment(
                flow_id=flow_id, name=name, work_pool_name=pool.name, entrypoint=ENTRYPOINT, pull_steps=pull_steps,
                job_variables=job_variables, parameter_openapi_schema=parameter_schema(worker_flow.fn).model_dump_for_openapi(),
                enforce_parameter_schema=False, tags=["dbnd", f"env:{env}"],
                description=f"dbnd tasks with task_env={env!r} (written by dbnd_prefect when one was called)")
        _deployments[key] = found
    return found


__all__ = ["FLOW_NAME", "ENTRYPOINT", "OUTPUT", "STORED", "encode_arguments", "run_settings", "run_in_env", "caller_env", "tasks_with_env", "check_task_envs", "check_env", "submit", "ensure_deployment"]
