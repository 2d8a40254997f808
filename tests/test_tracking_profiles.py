"""Data profiles: `log_dataframe` and the automatic profiles of every task's data inputs and outputs,
in the manifest and, read back through the Prefect API, in the UI's artifacts."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
import pytest

from dbnd_prefect import Data, config_context, log_dataframe, task
from tests.test_tracking_metrics import artifacts, manifest_of, task_run_id

WINES = pd.DataFrame({
    "alcohol": [9.5, 10.0, 12.5, None, 11.0],
    "colour": ["red", "white", "red", "red", None],
    "quality": [5, 6, 7, 5, 6],
})


@task
def describe_wines(wines: pd.DataFrame) -> int:
    profile = log_dataframe("trk wines", wines, with_histograms=True, with_preview=True)
    return profile["rows"]


def test_log_dataframe_profile_and_artifact(workdir):
    assert describe_wines(WINES) == 5
    profile = manifest_of("describe_wines")["tracking"]["logged_profiles"]["trk wines"]
    assert profile["schema"] == {"alcohol": "float64", "colour": "str", "quality": "int64"}
    assert profile["rows"] == 5 and profile["columns_count"] == 3 and profile["bytes"] > 0
    alcohol, colour = profile["columns"]["alcohol"], profile["columns"]["colour"]
    assert alcohol["nulls"] == 1 and alcohol["distinct"] == 4
    assert alcohol["min"] == 9.5 and alcohol["max"] == 12.5 and alcohol["mean"] == pytest.approx(10.75)
    assert alcohol["50%"] == pytest.approx(10.5) and "std" in alcohol and "25%" in alcohol and "75%" in alcohol
    assert colour["top"][0] == {"value": "red", "count": 3}
    assert sum(alcohol["histogram"]["counts"]) == 4
    assert colour["histogram"] == {"kind": "categorical", "values": ["red", "white"], "counts": [3, 1]}
    assert profile["preview"][0] == {"alcohol": 9.5, "colour": "red", "quality": 5}

    found = artifacts("profile-trk-wines", task_run_id("describe_wines"))
    assert len(found) == 1 and found[0].type == "markdown"
    text = found[0].data
    assert "### trk wines: 5 rows × 3 columns" in text
    assert "| alcohol | float64 | 1 | 4 | 10.75 |" in text
    assert "red (3), white (1)" in text and "First 5 rows:" in text


@task
def clean(raw: pd.DataFrame, note: str = "x") -> pd.DataFrame:
    return raw.dropna()


def test_inputs_and_outputs_are_profiled_into_manifest_and_artifacts(workdir):
    WINES.to_csv("wines.csv", index=False)
    clean("wines.csv")
    tracking = manifest_of("clean")["tracking"]
    raw, result = tracking["profiles"]["inputs"]["raw"], tracking["profiles"]["outputs"]["result"]
    assert raw["rows"] == 5 and raw["uri"] == str(workdir / "wines.csv")
    assert result["rows"] == 3 and result["columns"]["alcohol"]["nulls"] == 0
    assert "histogram" not in result["columns"]["alcohol"]  # histograms are off by default
    assert "note" not in tracking["profiles"]["inputs"]  # a plain parameter is not data
    run_id = task_run_id("clean")
    assert "### clean input 'raw': 5 rows" in artifacts("profiles-clean", run_id)[0].data
    assert "### clean output 'result': 3 rows" in artifacts("profiles-clean", run_id)[0].data


@task
def keep_private(secret_rows: Annotated[pd.DataFrame, Data(profile=False)],
                 shown: Annotated[pd.DataFrame, Data(histograms=True)]) -> int:
    return len(secret_rows) + len(shown)


def test_profiling_is_configurable_globally_and_per_parameter(workdir):
    keep_private(WINES, WINES)
    profiles = manifest_of("keep_private")["tracking"]["profiles"]
    assert "secret_rows" not in profiles["inputs"]
    assert "histogram" in profiles["inputs"]["shown"]["columns"]["alcohol"]

    with config_context({"tracking.profile": False}):
        clean(WINES.head(4))
    assert manifest_of("clean")["tracking"]["profiles"] == {"inputs": {}, "outputs": {}}
    assert not artifacts("profiles-clean", task_run_id("clean"))

    with config_context({"tracking.histograms": "true"}):
        clean(WINES.head(3))
    assert "histogram" in manifest_of("clean")["tracking"]["profiles"]["outputs"]["result"]["columns"]["quality"]


def test_a_large_frame_is_profiled_on_a_sample(workdir):
    rows = 200_000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "k": rng.integers(0, 1000, rows)})
    frame.loc[::10, "x"] = np.nan
    with config_context({"tracking.sample_rows": 5000}):
        clean(frame)
    profile = manifest_of("clean")["tracking"]["profiles"]["inputs"]["raw"]
    assert profile["rows"] == rows and profile["sampled"] is True and profile["sample_rows"] == 5000
    assert profile["columns"]["x"]["nulls"] == rows // 10  # counted on every row
    assert profile["columns"]["k"]["distinct"] <= 1000
    text = artifacts("profiles-clean", task_run_id("clean"))[0].data
    assert "random sample of 5,000 rows" in text


@task
def odd_columns(n: int) -> int:
    frame = pd.DataFrame({"tags": [["a"], ["b", "c"], ["a"], None], "mixed": [1, "one", 2.5, None],
                          "meta": [{"k": 1}, {"k": 2}, {"k": 1}, {}]})
    profile = log_dataframe("trk odd", frame)
    log_dataframe("trk not a frame", [1, 2, 3])
    return profile["columns"]["tags"]["distinct"]


def test_unhashable_and_mixed_columns_are_warnings_not_failures(workdir, caplog):
    assert odd_columns(1) == 2
    profile = manifest_of("odd_columns")["tracking"]["logged_profiles"]["trk odd"]
    assert profile["columns"]["tags"]["top"][0] == {"value": "['a']", "count": 2}
    assert any("column 'tags' holds unhashable values (list)" in w for w in profile["warnings"])
    assert any("column 'mixed' mixes types" in w for w in profile["warnings"])
    text = artifacts("profile-trk-odd", task_run_id("odd_columns"))[0].data
    assert "⚠ column 'meta' holds unhashable values (dict)" in text
    assert "log_dataframe('trk not a frame') got a builtins.list, which no profiler handles" in caplog.text


def test_unknown_tracking_key_names_the_valid_ones(workdir):
    from dbnd_prefect.errors import ConfigError
    from dbnd_prefect.config.tracking_settings import tracking_settings

    with config_context({"tracking.sample_row": 10}) as config:
        with pytest.raises(ConfigError, match="unknown key tracking.sample_row .*did you mean 'sample_rows'"):
            tracking_settings(config)
    with config_context({"tracking.sample_rows": "many"}) as config:
        with pytest.raises(ConfigError, match="invalid tracking.sample_rows = 'many'.*expected a positive integer"):
            tracking_settings(config)
