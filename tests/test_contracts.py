"""Data contracts: `Annotated[DataFrame, Schema(...)]` checked when an input is loaded and before an output is saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import pytest

from tests.conftest import REPO, run_python

DBND = Path(sys.executable).parent / "dbnd"

STEPS = '''
from typing import Annotated

import pandera.pandas as pa
from pandas import DataFrame

from dbnd_prefect import Schema, task


class Wines(pa.DataFrameModel):
    alcohol: float = pa.Field(ge=0)
    quality: int = pa.Field(isin=[1, 2, 3, 4, 5])


@task
def score(wines: Annotated[DataFrame, Schema(Wines)]) -> DataFrame:
    return wines.assign(score=wines["alcohol"] * wines["quality"])


@task
def make_wines(bad: bool = False) -> Annotated[DataFrame, Schema(Wines)]:
    return DataFrame({"alcohol": [9.5, -1.0 if bad else 11.0], "quality": [5, 3]})
'''


def dbnd(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(REPO)])}
    return subprocess.run([str(DBND), *args], cwd=project, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\nmodules = ["steps"]\n')
    (tmp_path / "steps.py").write_text(STEPS)
    pd.DataFrame({"alcohol": [9.0, 12.5], "quality": [4, 5]}).to_csv(tmp_path / "good.csv", index=False)
    pd.DataFrame({"alcohol": [9.0, -3.0, -4.0], "quality": [4, 5, 9]}).to_csv(tmp_path / "bad.csv", index=False)
    return tmp_path


def written(project: Path, name: str) -> list[Path]:
    return sorted((project / "data").glob(f"local/*/*/*/{name}"))


def test_input_violation_is_one_line_exit_2_and_nothing_written(project):
    proc = dbnd(project, "run", "score", "--set", "score.wines=bad.csv")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("dbnd: error: task 'score', parameter 'wines'")
    assert str(project / "bad.csv") in line
    assert "data contract Wines violated: column 'alcohol' failed check 'greater_than_or_equal_to(0)'" in line
    assert "2 case(s), e.g. -3.0, -4.0" in line and "1 more failed check" in line
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not written(project, "*.parquet") and not written(project, "_manifest.json")


def test_input_that_satisfies_the_contract_records_the_checks(project):
    proc = dbnd(project, "run", "score", "--set", "score.wines=good.csv")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(written(project, "_manifest.json")[0].read_text())
    contract = manifest["tracking"]["profiles"]["inputs"]["wines"]["contract"]
    assert contract == {"schema": "Wines", "passed": 8, "failed": 0, "failures": []}
    assert manifest["tracking"]["profiles"]["inputs"]["wines"]["uri"] == str(project / "good.csv")


def test_contract_is_checked_and_recorded_with_profiling_off(project):
    proc = dbnd(project, "run", "score", "--set", "score.wines=good.csv", "--set", "tracking.profile=false")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(written(project, "_manifest.json")[0].read_text())
    wines = manifest["tracking"]["profiles"]["inputs"]["wines"]
    assert wines["contract"]["passed"] == 8 and "columns" not in wines  # the contract result, no profile
    assert manifest["tracking"]["profiles"]["outputs"] == {}


def test_output_violation_fails_the_task_and_writes_nothing(project):
    proc = dbnd(project, "run", "make_wines", "--set", "make_wines.bad=true")
    assert proc.returncode == 1, proc.stderr
    assert "task 'make_wines', output 'result'" in proc.stderr
    assert "column 'alcohol' failed check 'greater_than_or_equal_to(0)'" in proc.stderr
    assert not written(project, "*.parquet") and not written(project, "_manifest.json")


def test_output_contract_result_is_in_the_profile_artifact(project):
    code = (
        "import json, steps\n"
        "from prefect.client.orchestration import get_client\n"
        "from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, ArtifactFilterTaskRunId\n"
        "from dbnd_prefect.context import last_run\n"
        "steps.make_wines()\n"
        "entry = last_run().task_runs[0]\n"
        "manifest = json.load(open(entry['manifest']))\n"
        "print(json.dumps(manifest['tracking']['profiles']['outputs']['result']['contract']))\n"
        "found = ArtifactFilter(key=ArtifactFilterKey(any_=['profiles-make-wines']),\n"
        "                       task_run_id=ArtifactFilterTaskRunId(any_=[entry['task_run_id']]))\n"
        "with get_client(sync_client=True) as client:\n"
        "    print(client.read_artifacts(artifact_filter=found)[0].data)\n"
    )
    proc = run_python("-c", code, cwd=project, env={"PYTHONPATH": os.pathsep.join([str(project), str(REPO)])})
    assert proc.returncode == 0, proc.stderr
    contract_line, *artifact = proc.stdout.splitlines()
    assert json.loads(contract_line) == {"schema": "Wines", "passed": 8, "failed": 0, "failures": []}
    assert "Data contract `Wines` passed: 8 check(s) passed, 0 failed." in "\n".join(artifact)


def test_pandera_is_imported_only_when_a_schema_is_used(tmp_path):
    (tmp_path / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')
    code = (
        "import sys\n"
        "import pandas as pd\n"
        "from dbnd_prefect import task, log_dataframe, Schema\n"
        "@task\n"
        "def rows(frame: pd.DataFrame) -> pd.DataFrame:\n"
        "    log_dataframe('frame', frame)\n"
        "    return frame\n"
        "rows(pd.DataFrame({'a': [1, 2]}))\n"
        "print('pandera' in sys.modules)\n"
    )
    proc = run_python("-c", code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_schema_rejects_what_is_not_a_pandera_schema():
    from dbnd_prefect import Schema

    with pytest.raises(TypeError, match="Schema\\(\\) takes a pandera DataFrameModel or DataFrameSchema, got dict"):
        Schema({"alcohol": float})


def test_a_schema_beside_another_data_marker_is_refused_not_ignored():
    import pandera.pandas as pa

    from dbnd_prefect import Data, Schema, task
    from dbnd_prefect.errors import ParameterError

    class Rows(pa.DataFrameModel):
        a: int

    def load(rows) -> int:
        return len(rows)

    load.__annotations__["rows"] = Annotated[pd.DataFrame, Data(format="csv"), Schema(Rows)]
    with pytest.raises(ParameterError, match="has 2 Data markers; give one .*Schema\\(Model, format='csv'\\)"):
        task(load)
