"""The real `dbnd` console script in a subprocess: the issue's seed command lines on local files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flows.sample_data import wine_quality_frame
from tests.conftest import REPO

DBND = Path(sys.executable).parent / "dbnd"


def dbnd(*args: str, cwd: Path, script: list[str] | None = None) -> subprocess.CompletedProcess:
    assert DBND.exists(), "install the package: .venv/bin/pip install -e /work/main"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*(script or [str(DBND)]), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project: dbnd.toml listing the example module, and a small wine data set as CSV and JSON."""
    (tmp_path / "dbnd.toml").write_text('[run]\nmodules = ["flows.prepare_data"]\n')
    frame = wine_quality_frame(rows=40)
    frame.to_csv(tmp_path / "datafile.csv", index=False)
    frame.to_json(tmp_path / "datafile.json")
    return tmp_path


def summary_outputs(stdout: str, task: str = "prepare_data") -> dict[str, Path]:
    """Output name -> written file, from the lines under `task` in the run summary."""
    found: dict[str, Path] = {}
    current = None
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and not line.startswith("    "):
            current = parts[0].rstrip(":")
        elif line.startswith("    ") and len(parts) == 2 and current == task:
            found[parts[0]] = Path(parts[1])
    return found


def test_seed_command_line_on_a_local_csv(project):
    proc = dbnd("run", "prepare_data", "--set", "prepare_data.raw_data=datafile.csv", cwd=project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("run ") and f"data root {project / 'data'}" in lines[0]
    base = os.environ["PREFECT_API_URL"].rstrip("/").removesuffix("/api")
    assert lines[1].startswith("prefect flow run '") and f"{base}/runs/flow-run/" in lines[1]
    assert "  prepare_data: Completed" in lines
    outputs = summary_outputs(proc.stdout)
    assert sorted(outputs) == ["result_1", "result_2"]
    rows = [len(pd.read_parquet(path)) for path in outputs.values()]
    assert sum(rows) == 40 and rows[0] == 30
    assert all(str(path).startswith(str(project / "data" / "local")) for path in outputs.values())


def test_seed_command_line_with_json_set_and_a_json_file(project):
    (project / "dbnd.toml").write_text("[run]\n")  # found through -m instead
    proc = dbnd("run", "prepare_data", "-m", "flows.prepare_data", "--set",
                json.dumps({"prepare_data.raw_data": "datafile.json"}), cwd=project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = summary_outputs(proc.stdout)
    train = pd.read_parquet(outputs["result_1"])
    assert len(train) == 30 and "quality" in train.columns
    manifest = json.loads((outputs["result_1"].parent / "_manifest.json").read_text())
    assert manifest["inputs"][0]["uri"] == str(project / "datafile.json")
    assert manifest["command_line"][:2] == ["dbnd", "run"]


def test_pipeline_by_dotted_path_with_env_and_task_version(project):
    proc = dbnd("run", "flows.wine_quality.predict_wine_quality", "--set", "raw_data=datafile.csv",
                "--set", "train_model.alpha=0.3", "--env", "local", "--task-version", "now", cwd=project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("fetch_data", "split_data", "train_model", "validate_model"):
        assert f"  {name}: Completed" in proc.stdout
    model_file = summary_outputs(proc.stdout, "train_model")["result"]
    assert model_file.suffix == ".pkl" and pd.read_pickle(model_file).alpha == 0.3
    metrics = json.loads(summary_outputs(proc.stdout, "validate_model")["result"].read_text())
    assert metrics["rows"] == 10


def test_input_mistake_is_one_line_with_exit_code_2(project):
    proc = dbnd("run", "prepare_data", "--set", "prepare_data.raw_data=nope.csv", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"dbnd: error: input file not found: prepare_data.raw_data = 'nope.csv' (from --set "
        f"prepare_data.raw_data=nope.csv; looked at {project / 'nope.csv'}) (check the path, or pass another "
        f"with --set prepare_data.raw_data=PATH)"
    ]
    assert proc.stdout == ""
    assert not (project / "data").exists()


def test_failing_task_exit_code_1_names_task(project):
    (project / "broken.py").write_text(
        "from dbnd_prefect import task\n\n@task\ndef explode(n: int = 1) -> int:\n"
        "    raise RuntimeError(f'exploded at {n}')\n")
    proc = dbnd("run", "broken.py:explode", "--set", "n=7", cwd=project)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "dbnd: error: task 'explode' failed: RuntimeError: exploded at 7 (run with --verbose for the traceback)")


def test_python_dash_m_task_help(project):
    proc = dbnd("run", "prepare_data", "--set", "raw_data=datafile.csv", "--help", cwd=project,
                script=[sys.executable, "-m", "dbnd_prefect"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = next(" ".join(line.split()) for line in proc.stdout.splitlines() if line.strip().startswith("raw_data"))
    assert row == ("raw_data pandas.DataFrame (data: path or URI) (required) 'datafile.csv' "
                   "set layer, --set prepare_data.raw_data=datafile.csv")


def test_help_and_version_import_neither_prefect_nor_data_libraries():
    code = ("import sys\nfrom dbnd_prefect.cli import main\n"
            "codes = [main(['--version']), main(['--help']), main(['run', '--help']), main(['plan', '--help'])]\n"
            "heavy = sorted({'prefect', 'pandas', 'pyarrow', 'numpy'} & {m.split('.')[0] for m in sys.modules})\n"
            "print('RESULT', codes, heavy)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "RESULT [0, 0, 0, 0] []"
    assert "dbnd-prefect " in proc.stdout and "Usage: dbnd run" in proc.stdout and "--task-version" in proc.stdout
