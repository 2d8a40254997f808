"""The example pipelines in flows/ run as plain Python, the way a user runs them."""

from __future__ import annotations


import pytest

from tests.conftest import REPO, run_python


@pytest.mark.parametrize(
    "script, expected",
    [
        ("flows/prepare_data.py", "prepare_data: 1125 training rows, 375 validation rows"),
        ("flows/acquire_key.py", "prepare_data_pipeline: column 'quality' with 1500 values"),
        ("flows/wine_quality.py", "wine quality model: alpha=0.5"),
    ],
)
def test_example_runs_as_plain_python(script, expected, tmp_path):
    proc = run_python(str(REPO / script), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout
    if "wine" in script:
        assert "validate_model: Completed" in proc.stdout
        assert (tmp_path / "data" / "local").is_dir(), "outputs were not written under ./data"
