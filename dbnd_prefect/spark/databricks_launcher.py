"""The cluster's side of a Spark task sent to Databricks (spark/databricks_tasks.py): run one call, as sent.

The launcher script a job runs calls `main(FILES, argv)`: the task's project files are written to a fresh
folder (the project root there), the task is imported from them and its code checked against the caller's
code fingerprint, and the call runs through the usual task body (load, call, store, manifest) with the
caller's signature, data root and run settings, on the cluster's own Spark session. Nothing here talks to a
Prefect API: the caller records the run. A failure ends the job with one last line saying what failed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

MARKER = "dbnd.toml"  # makes the folder the project root, as the caller's was (task identities are relative to it)


def main(files: Mapping[str, str], argv: list[str]) -> int:
    """Run the call `argv` carries (`--call JSON` or `--call-uri URI`); 0 when its outputs are stored, else 1."""
    try:
        outputs = run_call(files, _payload(argv))
    except Exception as exc:  # noqa: BLE001 - the job's last line is what the caller shows
        import traceback

        from dbnd_prefect.redaction import one_line

        traceback.print_exc()
        from dbnd_prefect.spark.databricks_jobs import LAUNCHER_FAILURE

        print(f"{LAUNCHER_FAILURE}{one_line(exc, 600)}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps({"outputs": outputs}), flush=True)
    return 0


def run_call(files: Mapping[str, str], payload: Mapping[str, Any]) -> dict[str, str]:
    """Run the call in `payload` with the task code in `files`; the stored outputs' URIs by name."""
    from dbnd_prefect.calls import CallOptions, signed
    from dbnd_prefect.context import joined
    from dbnd_prefect.definitions.registry import import_by_identity
    from dbnd_prefect.engine.flow_signature import settings_applied
    from dbnd_prefect.engine.remote_worker import decode_argument
    from dbnd_prefect.engine.task_body import run_task_body
    from dbnd_prefect.errors import DbndError
    from dbnd_prefect.fingerprint.signature import Signature
    from dbnd_prefect.runtime.session import open_run_from
    from dbnd_prefect.tracking.notices import silence

    root = Path(tempfile.mkdtemp(prefix="dbnd-task-"))
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(source, encoding="utf-8")
    (root / MARKER).touch()
    os.chdir(root)  # the configuration is the call's settings: no project file of the cluster's takes part
    silence("artifact outside a run")  # the caller publishes what the run tracked, from its manifest
    task = import_by_identity(payload["task"], "", str(root))
    wanted = Signature(**payload["signature"])
    if task.code_fingerprint != wanted.code:
        raise DbndError(f"the code of task '{task.name}' on the cluster differs from the code that sent it",
                        hint="install the same versions of the packages the task uses on the cluster")
    with settings_applied(payload["settings"]):
        run = open_run_from(command_line=sys.argv)
        run.run_date = dt.date.fromisoformat(payload["run_date"])
        run.flow_run_id = payload.get("root_flow_run_id")
        with joined(run):
            values = {name: decode_argument(task, name, value) for name, value in payload["arguments"].items()}
            call = signed(task, values, run, wanted, CallOptions(task_name=payload.get("run_name")))
            if call.output_dir != payload["output_dir"]:
                raise DbndError(f"task '{task.name}': the cluster would write to {call.output_dir}, not to "
                                f"{payload['output_dir']} where the caller reads", hint="report this as a bug")
            outputs = run_task_body(call, tuple(payload.get("task_run") or (None, None)))
    return {name: stored.uri for name, stored in outputs.stored.items()}


def _payload(argv: list[str]) -> dict[str, Any]:
    from dbnd_prefect.spark.databricks_tasks import CALL_ARGUMENT, CALL_URI_ARGUMENT

    if len(argv) == 2 and argv[0] == CALL_ARGUMENT:
        return json.loads(argv[1])
    if len(argv) == 2 and argv[0] == CALL_URI_ARGUMENT:
        from dbnd_prefect.targets.uploads import load_value

        return load_value(argv[1])
    raise SystemExit(f"usage: launcher.py {CALL_ARGUMENT} JSON | {CALL_URI_ARGUMENT} URI (got {argv[:1]})")


__all__ = ["main", "run_call"]
