"""Metrics and files a task logs: in its manifest and, read back through the Prefect API, in the UI's artifacts."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from dbnd_prefect import log_artifact, log_metric, log_metrics, task
from dbnd_prefect.context import last_run


def artifacts(key: str, task_run_id: str | None = None) -> list:
    """The artifacts under `key` (of one task run when given), newest first, read through the Prefect client."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, ArtifactFilterTaskRunId
    from prefect.client.schemas.sorting import ArtifactSort

    found = ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
    if task_run_id:
        found.task_run_id = ArtifactFilterTaskRunId(any_=[task_run_id])
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=found, sort=ArtifactSort.CREATED_DESC)


def manifest_of(task_name: str) -> dict:
    entry = next(e for e in last_run().task_runs if e["task"] == task_name)
    return json.loads(Path(entry["manifest"]).read_text())


def task_run_id(task_name: str) -> str:
    return str(next(e for e in last_run().task_runs if e["task"] == task_name)["task_run_id"])


@task
def train_epochs(epochs: int) -> int:
    for epoch in range(epochs):
        log_metric("trk loss", 1.0 / (epoch + 1))
    log_metrics({"trk_accuracy": 0.9, "trk_rows": 120})
    return epochs


def test_repeated_metric_is_a_series_in_manifest_and_artifact(workdir):
    assert train_epochs(3) == 3
    manifest = manifest_of("train_epochs")
    assert manifest["metrics"] == {"trk loss": pytest.approx(1 / 3), "trk_accuracy": 0.9, "trk_rows": 120}
    series = manifest["tracking"]["metrics"]["trk loss"]
    assert [p["value"] for p in series] == pytest.approx([1.0, 0.5, 1 / 3])
    assert [p["step"] for p in series] == [0, 1, 2]

    found = artifacts("metric-trk-loss", task_run_id("train_epochs"))
    assert len(found) == 1 and found[0].type == "table"
    table = json.loads(found[0].data)
    assert [row["value"] for row in table] == pytest.approx([1.0, 0.5, 1 / 3])


def test_metric_artifact_key_is_stable_across_runs(workdir):
    train_epochs(2)
    first = task_run_id("train_epochs")
    train_epochs(4)
    second = task_run_id("train_epochs")
    assert first != second
    history = artifacts("metric-trk-accuracy")
    assert {str(a.task_run_id) for a in history} >= {first, second}  # one key, one entry per run: comparable


@task
def odd_metrics(n: int) -> int:
    log_metric("trk_label", "good")
    log_metric("trk_nan", float("nan"))
    log_metric("trk_obj", object())
    log_metrics(["not", "a", "dict"])
    log_metric("trk_ok", n)
    return n


def test_non_numeric_metrics_warn_and_never_fail_the_task(workdir, caplog):
    assert odd_metrics(5) == 5
    manifest = manifest_of("odd_metrics")
    assert manifest["metrics"]["trk_label"] == "good"
    assert manifest["metrics"]["trk_nan"] == "nan"
    assert manifest["metrics"]["trk_ok"] == 5
    text = caplog.text
    assert "metric 'trk_label' = 'good' (str) is not a number" in text
    assert "'trk_nan' = nan is not a finite number" in text
    assert "log_metrics expects a dict" in text


def test_metric_outside_a_run_is_kept_and_warned_once_without_prefect_warning():
    from dbnd_prefect.tracking import TrackingWarning, metrics_outside_runs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_metric("trk_outside", 1)
        log_metric("trk_outside", 2)
        log_metrics({"trk_outside2": 3.5})
    assert [p["value"] for p in metrics_outside_runs()["trk_outside"]][-2:] == [1, 2]
    assert metrics_outside_runs()["trk_outside2"][-1]["value"] == 3.5
    kinds = [w.category for w in caught]
    assert FutureWarning not in kinds  # Prefect's "artifact creation outside of a flow or task run" warning
    outside = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(outside) <= 1  # once per process (an earlier test may have had it)
    assert not artifacts("metric-trk-outside")


@task
def plot_and_file(n: int) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot(range(n))
    log_artifact("trk curve", figure)
    plt.close(figure)
    from PIL import Image

    log_artifact("trk pixel", Image.new("RGB", (2, 2), "red"))
    Path("report.txt").write_text("hello")
    log_artifact("trk report", "report.txt")
    log_artifact("trk missing", "no-such-file.txt")
    log_artifact("trk weird", object())
    return n


def test_log_artifact_stores_figures_and_files_and_links_them(workdir, caplog):
    assert plot_and_file(3) == 3
    files = manifest_of("plot_and_file")["tracking"]["files"]
    curve, report = Path(files["trk curve"]), Path(files["trk report"])
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(files["trk pixel"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.read_text() == "hello"
    assert curve.is_relative_to(workdir / "data") and curve.parent.name == "artifacts"
    link = artifacts("file-trk-curve", task_run_id("plot_and_file"))
    assert len(link) == 1 and link[0].type == "markdown"  # Prefect stores a link artifact as markdown
    assert curve.as_uri() in link[0].data
    assert "'no-such-file.txt' is not a file" in caplog.text
    assert "cannot store a builtins.object" in caplog.text
    assert "trk missing" not in files
