"""Metrics and data profiles logged inside a task (dbnd_prefect.tracking): in the manifest and as Prefect artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dbnd_prefect import task
from dbnd_prefect.context import last_run


@task
def scored(frame: pd.DataFrame) -> float:
    from dbnd_prefect import log_dataframe, log_metric

    log_dataframe("input", frame)
    log_metric("score", 0.75)
    return 0.75


def test_metrics_reach_manifest_and_prefect_artifacts(workdir):
    scored(pd.DataFrame({"x": [1.0, 2.0, None]}))
    entry = last_run().task_runs[0]
    assert json.loads(Path(entry["manifest"]).read_text())["metrics"] == {"score": 0.75}
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["profile-input"])))
    assert found and "| x | float64 | 1 |" in found[0].data
