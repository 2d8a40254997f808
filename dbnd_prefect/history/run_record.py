"""The record of one pipeline run: every task run it made or reused, and where their manifests are.

Task manifests say how each output was made; the run record says which outputs a run used. A task
whose outputs are reused writes no new manifest, so without the run record a fully cached run would
leave no trace to reproduce it by. One JSON file per top-level pipeline run (a failed one too), at
`{root}/.dbnd/runs/{flow_run_id}.json`, written atomically when the pipeline ends: a run id prefix
finds it with one listing, also on object stores.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from dbnd_prefect.context import RunContext

logger = logging.getLogger("dbnd_prefect")

SCHEMA_VERSION = 1


def build_run_record(
    run: "RunContext",
    pipeline: str,
    parameters: Mapping[str, Any],
    state: str,
    started: dt.datetime,
    ended: dt.datetime,
) -> dict[str, Any]:
    """The run record document of a finished pipeline run."""
    from dbnd_prefect.redaction import redact
    from dbnd_prefect.history.manifest import mask_command_line, mask_parameters

    shown = {name: (redact(str(value)) if isinstance(value, (str, os.PathLike)) else value)
             for name, value in parameters.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "pipeline": pipeline,
        "flow_run_id": run.flow_run_id,
        "run_uid": run.run_uid,
        "state": state,
        "env": run.env,
        "data_root": redact(run.data_root),
        "parameters": mask_parameters(shown),
        "command_line": mask_command_line(run.command_line) if run.command_line is not None else None,
        "started": started.isoformat(),
        "ended": ended.isoformat(),
        "task_runs": [dict(entry) for entry in run.task_runs],
    }


def write_run_record(
    run: "RunContext", pipeline: str, parameters: Mapping[str, Any], state: str, started: dt.datetime
) -> str | None:
    """Write the record of a finished run; its URI, or None (with a warning) when it cannot be written.

    A record that cannot be written does not fail a run whose data is already stored.
    """
    from dbnd_prefect.redaction import one_line
    from dbnd_prefect.targets import Target

    if run.flow_run_id is None:
        return None
    uri = run.storage.run_record_uri(run.flow_run_id)
    record = build_run_record(run, pipeline, parameters, state, started, dt.datetime.now(dt.timezone.utc))
    try:
        Target(uri, format="json").save(record)
    except Exception as exc:
        logger.warning("Pipeline '%s': the run record could not be written to %s: %s", pipeline, uri, one_line(exc))
        return None
    return uri


def find_run_records(data_root: str, run_id: str) -> list[dict[str, Any]]:
    """The run records whose flow run id starts with `run_id`, each with its `uri`."""
    from dbnd_prefect import layout
    from dbnd_prefect.history.versions import read_json_glob

    try:
        return read_json_glob(layout.run_record_glob(data_root, run_id))
    except (OSError, ValueError):  # no records folder on the store yet: the caller falls back to the manifests
        return []
