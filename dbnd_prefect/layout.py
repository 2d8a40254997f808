"""Where things live under a data root: the one place that knows the folder layout.

    {root}/{env}/{date}/{task}/{task}_{signature16}/{output}.{ext}    a task run's outputs
    {root}/{env}/{date}/{task}/{task}_{signature16}/_manifest.json    written last: the set is complete
    {root}/.dbnd/prefect-records/{signature}                          Prefect's cache record of a signature
    {root}/.dbnd/runs/{flow run id}.json                              the record of a pipeline run

Pure string functions: nothing here touches storage. Also this machine's cache folder (`cache_dir`).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

MANIFEST_NAME = "_manifest.json"
STORE_DIR = ".dbnd"
RECORDS_DIR = "prefect-records"
RUNS_DIR = "runs"
SIGNATURE_LENGTH = 16  # hex characters of a signature used in folder names; manifests keep the whole digest
_NAME_LIMIT = 100  # file names have a length limit


def cache_dir() -> Path:
    """This machine's cache (downloaded inputs, help texts): $DBND_CACHE_DIR, else ~/.cache/dbnd_prefect."""
    if os.environ.get("DBND_CACHE_DIR"):
        return Path(os.environ["DBND_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dbnd_prefect"


def folder_name(task_name: str) -> str:
    """The task's name as used in folder names."""
    return task_name[:_NAME_LIMIT]


def output_dir(data_root: str, env: str, run_date: dt.date, task_name: str, digest: str) -> str:
    """The folder of a task run's outputs: readable, and unique per signature."""
    name = folder_name(task_name)
    return "/".join([data_root.rstrip("/"), env, run_date.isoformat(), name, f"{name}_{digest[:SIGNATURE_LENGTH]}"])


def manifest_uri(folder: str) -> str:
    """The manifest of the outputs in `folder`."""
    return f"{folder}/{MANIFEST_NAME}"


def manifest_glob(data_root: str, env: str = "*", task_name: str = "*") -> str:
    """A glob pattern matching the manifests of one env's / one task's runs (`*` for all)."""
    name = folder_name(task_name) if task_name != "*" else "*"
    return f"{data_root.rstrip('/')}/{env}/*/{name}/{name}_*/{MANIFEST_NAME}"


def store_dir(data_root: str) -> str:
    """The folder of dbnd's own records under a data root."""
    return f"{data_root.rstrip('/')}/{STORE_DIR}"


def record_uri(data_root: str, digest: str) -> str:
    """Prefect's cache record of a signature."""
    return f"{store_dir(data_root)}/{RECORDS_DIR}/{digest}"


def run_records_folder(data_root: str) -> str:
    return f"{store_dir(data_root)}/{RUNS_DIR}"


def run_record_uri(data_root: str, flow_run_id: str) -> str:
    """The record of the pipeline run `flow_run_id`."""
    return f"{run_records_folder(data_root)}/{flow_run_id}.json"


def run_record_glob(data_root: str, run_id_prefix: str) -> str:
    """A glob pattern matching the run records whose flow run id starts with `run_id_prefix`."""
    return f"{run_records_folder(data_root)}/{run_id_prefix.lower()}*.json"
