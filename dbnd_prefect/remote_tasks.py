"""Kept at this path because deployments name it: `dbnd-task` runs have `dbnd_prefect.remote_tasks.dbnd_task`
as their entrypoint (see engine/remote_worker.py, where the flow lives)."""

from dbnd_prefect.engine.remote_worker import dbnd_task

__all__ = ["dbnd_task"]
