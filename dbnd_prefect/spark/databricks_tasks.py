"""Spark tasks of a Databricks profile, sent to its cluster: one Databricks job run (runs/submit) per call.

    [env.dbx]
    data_root = "s3://lake/dbnd"             # a root both this machine and the cluster reach
    [env.dbx.spark]
    engine = "databricks"
    credentials_block = "dbx-prod"           # a prefect-databricks DatabricksCredentials block
    cluster_id = "0923-164208-meows279"      # or new_cluster = { spark_version = ..., ... }
    libraries = [{ pypi = { package = "dbnd-prefect[spark]" } }]

A task is a Spark task when one of its parameters or outputs is a Spark DataFrame. In a run of this profile
its call is bound and signed here, as for a local run, so a stored version is reused with no job submitted.
Otherwise the task run's body, here, uploads the task's code (the project files its code fingerprint reaches,
in one launcher script named by their content: one upload per code version), submits one `spark_python_task`
with the call (the task's identity, its arguments as JSON values and URIs on the profile's data root, the
signature and run settings), waits for it, and reads the manifest the cluster wrote back from the data root.
The task run gets a link artifact to the Databricks run. The cluster's side is spark/databricks_launcher.py.
Other tasks of the run run here. The token stays in the block: never in the request, a message or a log line.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbnd_prefect import layout, plugins
from dbnd_prefect.errors import ConfigError, DbndError, TaskFailedError
from dbnd_prefect.spark.settings import DatabricksEngine

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall
    from dbnd_prefect.context import RunContext
    from dbnd_prefect.outputs import TaskOutputs

CALL_ARGUMENT, CALL_URI_ARGUMENT = "--call", "--call-uri"
PARAMETERS_LIMIT = 8_000  # Databricks refuses run parameters over 10,000 bytes: a longer call goes by the data root
_LAUNCHER = '''\
"""One dbnd task call, run on this cluster: written by dbnd_prefect (spark/databricks_tasks.py)."""
import json
import sys

FILES = json.loads({files!r})  # the project files the task's code reaches, by path under the project root

if __name__ == "__main__":
    from dbnd_prefect.spark.databricks_launcher import main

    sys.exit(main(FILES, sys.argv[1:]))
'''


class DatabricksTaskSender:
    """Sends the Spark tasks of a run of profile `env` to its Databricks cluster (a `plugins.TaskSender`)."""

    def __init__(self, env: str, settings: DatabricksEngine) -> None:
        self.env = env
        self.settings = settings
        where = f"cluster {settings.cluster_id}" if settings.cluster_id else "a new job cluster"
        self.where = f"a Databricks job on {where} (environment '{env}')"
        self._uploaded: set[str] = set()

    def takes(self, task: Any) -> bool:
        return task.kind == "task" and is_spark_task(task)

    def check(self, run: "RunContext") -> None:
        from dbnd_prefect.spark.databricks_jobs import build_task, databricks_settings

        databricks_settings(self.env, run.config)  # the engine and its credentials block are named
        build_task(self.env, self.settings, "/check.py", [], "check")  # the cluster settings fit the Jobs API
        if run.settings.storage_block:
            raise ConfigError(f"environment '{self.env}' keeps its data in storage block "
                              f"'{run.settings.storage_block}', which a Databricks cluster cannot load",
                              hint=f"set env.{self.env}.data_root to an s3://, gs:// or az:// root the cluster reaches")

    def submit(self, call: "BoundCall", run: "RunContext") -> "TaskOutputs":
        from prefect.utilities.asyncutils import run_coro_as_sync

        return run_coro_as_sync(self._submit(call, run))

    async def _submit(self, call: "BoundCall", run: "RunContext") -> "TaskOutputs":
        from dbnd_prefect.spark.databricks_jobs import (
            build_task,
            exists,
            load_credentials,
            reaching,
            submit_and_poll,
            task_key,
            upload,
        )

        task = call.task
        if not task.versioned:
            raise ConfigError(f"task '{task.name}' is a Spark task of environment '{self.env}', which runs it as a "
                              "Databricks job, but versioned=False keeps its outputs in memory",
                              hint="drop versioned=False: the job hands its outputs back through the data root")
        python_file, script = self.launcher(task)
        arguments = self.call_arguments(call, run)
        job = build_task(self.env, self.settings, python_file, arguments, task_key(task.name))
        credentials = await load_credentials(self.env, self.settings)
        name = f"dbnd {task.name} {call.signature.short}"
        async with reaching(self.env, self.settings, credentials):
            if python_file not in self._uploaded:
                if not await exists(credentials, python_file):
                    await upload(credentials, python_file, script.encode())
                self._uploaded.add(python_file)
            _log().info("Task '%s' runs as a Databricks job on %s", task.name, self.where.removeprefix("a Databricks job on "))
            try:
                finished = await submit_and_poll(credentials, job, name, self.env, self.settings)
            except TaskFailedError as exc:
                _link(task.name, getattr(exc, "run", None))
                exc.task_name = task.name  # type: ignore[attr-defined]
                raise
        _link(task.name, finished)
        return read_back(call, run, finished.run_id)

    def launcher(self, task: Any) -> tuple[str, str]:
        """(workspace path, text) of the launcher script carrying `task`'s code, named by its content."""
        files = code_files(task)
        script = _LAUNCHER.format(files=json.dumps(files, sort_keys=True))
        digest = hashlib.sha256(script.encode()).hexdigest()[:16]
        stem = Path(inspect.getsourcefile(task.func) or "task").stem
        return f"{self.settings.workspace_dir.rstrip('/')}/tasks/{stem}-{digest}.py", script

    def call_arguments(self, call: "BoundCall", run: "RunContext") -> list[str]:
        """The job's `--call JSON` arguments (or `--call-uri URI` of the call stored under the data root)."""
        from dbnd_prefect.engine.remote_caller import encode_arguments, run_settings
        from dbnd_prefect.targets.uploads import store_value

        task, signature = call.task, call.signature
        settings = {**run_settings(run), f"env.{self.env}.spark": cluster_settings(self.settings)}
        payload = {
            "task": task.task_id,
            "module": getattr(task.func, "__module__", None) or "",
            "arguments": encode_arguments(call, run.profile, "the Databricks job run"),
            "signature": {"digest": signature.digest, **signature.parts()},
            "settings": settings,
            "run_date": run.run_date.isoformat(),
            "root_flow_run_id": run.flow_run_id,
            "run_name": call.run_name,
            "output_dir": call.output_dir,
            "task_run": _task_run_ids(),
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        if len(text) <= PARAMETERS_LIMIT:
            return [CALL_ARGUMENT, text]
        return [CALL_URI_ARGUMENT, store_value(run.data_root, payload)]


def sender_for(env: str, settings: Any) -> DatabricksTaskSender | None:
    """The task sender of profile `env` when its Spark engine is `databricks` with `tasks = "job"` (see plugins.py)."""
    return DatabricksTaskSender(env, settings) if isinstance(settings, DatabricksEngine) and settings.tasks == "job" \
        else None


def is_spark_task(task: Any) -> bool:
    """Whether one of `task`'s parameters or outputs is a Spark DataFrame."""
    spark = plugins.frame_type_of_library("pyspark")
    return spark is not None and any(spec.type_key == spark.key for spec in [*task.params, *task.outputs])


def cluster_settings(settings: DatabricksEngine) -> dict[str, Any]:
    """The `[env.NAME.spark]` table the cluster's run uses: the cluster's own session, the profile's options."""
    return {"engine": "cluster", "conf": dict(settings.conf), "to_pandas_max_rows": settings.to_pandas_max_rows,
            "auto_profile": settings.auto_profile}


def code_files(task: Any) -> dict[str, str]:
    """The project files `task`'s code fingerprint reaches, with the packages' `__init__.py` above them: path
    under the project root -> source. ConfigError for code with no file (a notebook cell)."""
    from dbnd_prefect.fingerprint.code import describe_code
    from dbnd_prefect.identity import project_root

    source = inspect.getsourcefile(task.func)
    if not source:
        raise ConfigError(f"task '{task.name}' has no source file (defined in a notebook or by exec), so it cannot "
                          "be sent to a Databricks cluster", hint="move the task into a module of the project")
    root = project_root(source)
    paths = {identity.partition(":")[0] for identity in describe_code(task.func)["functions"]}
    paths.add(os.path.relpath(os.path.realpath(source), root).replace(os.sep, "/"))
    for path in list(paths):
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            init = "/".join([*parts[:depth], "__init__.py"])
            if (root / init).is_file():
                paths.add(init)
    files = {}
    for path in sorted(paths):
        if path.startswith("<") or not (root / path).is_file():
            raise ConfigError(f"task '{task.name}' reaches code with no file in the project ({path}), so it cannot "
                              "be sent to a Databricks cluster", hint="move that code into a module of the project")
        files[path] = (root / path).read_text(encoding="utf-8")
    return files


def read_back(call: "BoundCall", run: "RunContext", run_id: int) -> "TaskOutputs":
    """The stored outputs the cluster's run wrote for `call`, from its manifest on the data root."""
    from dbnd_prefect.history.manifest import read_manifest
    from dbnd_prefect.outputs import StoredOutput, TaskOutputs
    from dbnd_prefect.tracking.task_run import publish_profiles
    from dbnd_prefect.versioning.verify import verify_outputs

    task = call.task
    manifest_uri = layout.manifest_uri(call.output_dir)
    manifest = read_manifest(manifest_uri)
    problem = "its manifest is missing" if manifest is None else (
        "its manifest belongs to another signature" if manifest.get("signature") != call.digest
        else verify_outputs(manifest, full=run.verify == "full"))
    if problem:
        raise DbndError(f"task '{task.name}' completed as Databricks run {run_id}, but its outputs cannot be read "
                        f"from {run.data_root}: {problem}",
                        hint=f"the cluster and this machine must reach the same data root (env.{run.env}.data_root)")
    publish_profiles(task.name, (manifest.get("tracking") or {}).get("profiles") or {})
    stored = {name: StoredOutput(uri=info["uri"], format=info["format"], type_key=info["type_key"],
                                 checksum=info.get("checksum"), bytes=info.get("bytes"))
              for name, info in manifest["outputs"].items()}
    return TaskOutputs(task.name, call.digest, task.output_names, stored, manifest_uri)


def _task_run_ids() -> list[str | None]:
    """[flow run id, task run id] of the Prefect task run in effect (the one the cluster's manifest names)."""
    from prefect.context import TaskRunContext

    context = TaskRunContext.get()
    if context is None:
        return [None, None]
    flow_run_id = context.task_run.flow_run_id
    return [str(flow_run_id) if flow_run_id else None, str(context.task_run.id)]


def _link(task_name: str, finished: Any) -> None:
    """A link artifact on the task run to the Databricks run (its page in the workspace)."""
    url = getattr(finished, "run_page_url", None)
    if url:
        from dbnd_prefect.tracking.publish import artifact_key, publish_link

        publish_link(artifact_key("databricks-run", task_name), url, f"Databricks run {finished.run_id}",
                     description=f"task **{task_name}** ran as Databricks run {finished.run_id} "
                                 f"({finished.result_state})")


def _log() -> Any:
    import logging

    import prefect

    try:
        return prefect.get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run context: the library's own logger
        return logging.getLogger("dbnd_prefect")


__all__ = ["DatabricksTaskSender", "sender_for", "is_spark_task", "cluster_settings", "code_files", "read_back"]
