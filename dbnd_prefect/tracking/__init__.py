"""Tracking: metrics, data profiles, files and data contracts of task runs, shown in the Prefect UI.

    log_metric / log_metrics     metrics.py    series per key; manifest + table artifact `metric-{key}`
    log_dataframe                log_frames.py a data profile (profiling.py computes, render.py shows)
    log_artifact                 files.py      a file or figure stored under the data root, linked
    Schema                       contracts.py  pandera data contracts on parameters and outputs
    TaskTracking                 task_run.py   what the run path does around one task body
    [tracking] configuration     config/tracking_settings.py

Every call is a plain sync call wherever it is made (a task, a notebook cell, a thread with a running
event loop) and never raises into the user's code: what cannot be recorded is a warning.
"""

from __future__ import annotations

from dbnd_prefect.tracking.contracts import Schema
from dbnd_prefect.tracking.files import log_artifact
from dbnd_prefect.tracking.metrics import collecting_metrics, log_metric, log_metrics, metrics_outside_runs
from dbnd_prefect.tracking.notices import TrackingWarning
from dbnd_prefect.tracking.log_frames import log_dataframe
from dbnd_prefect.tracking.profiling import ProfileOptions, profile_data, register_profiler
from dbnd_prefect.tracking.task_run import TaskTracking, current_tracking

__all__ = [
    "Schema", "log_artifact", "collecting_metrics", "log_metric", "log_metrics", "metrics_outside_runs",
    "TrackingWarning", "ProfileOptions", "log_dataframe", "profile_data", "register_profiler", "TaskTracking",
    "current_tracking",
]
