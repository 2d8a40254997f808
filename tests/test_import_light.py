"""`import dbnd_prefect` loads no heavy data or cloud library; `dbnd plan` does not import Prefect."""

import os

from tests.conftest import REPO, run_python

HEAVY = ("pandas", "pyarrow", "pyspark", "boto3", "botocore", "s3fs", "gcsfs", "adlfs", "google.cloud",
         "azure.storage", "numpy", "sklearn")


def test_import_loads_no_heavy_library():
    code = (
        "import sys, dbnd_prefect\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


PLANNED = '''
from dbnd_prefect import pipeline, task


@task
def inc(x: int) -> int:
    return x + 1


@pipeline
def two(x: int = 1) -> int:
    return inc(inc(x))
'''


def plan_of(project, module_text: str) -> tuple[str, set[str]]:
    """`dbnd plan steps.two` in `project`: (its output, the top-level modules it imported)."""
    (project / "steps.py").write_text(module_text)
    env = {"PYTHONPATH": f"{project}{os.pathsep}{REPO}", "PYTHONPROFILEIMPORTTIME": "1", "DBND__RUN__DATA_ROOT": "data"}
    proc = run_python("-m", "dbnd_prefect", "plan", "steps.two", cwd=project,
                      env={k: v for k, v in {**os.environ, **env}.items() if k != "PREFECT_API_URL"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return proc.stdout, imported


def test_plan_imports_no_prefect_unless_the_module_uses_a_flow_method(tmp_path):
    planned, imported = plan_of(tmp_path, PLANNED)
    assert "would reuse 0 task run(s) and run 2 (2 miss)" in planned and "prefect" not in imported
    # a module that asks its pipeline for what only a Prefect flow has, at import time, gets the real flow
    planned, imported = plan_of(tmp_path, PLANNED + '\nrenamed = two.with_options(retries=1)\n')
    assert "would reuse 0 task run(s) and run 2 (2 miss)" in planned and "prefect" in imported


def test_a_plan_in_process_leaves_pipelines_that_run(tmp_path):
    """`dbnd plan` called in process (the pytest plugin's `run_cmd`) before Prefect is imported: the pipelines
    it imported are still Prefect flows, which a later call in that process runs."""
    (tmp_path / "steps.py").write_text(PLANNED)
    code = ("import sys\n"
            "from dbnd_prefect.pytest_plugin import run_cmd\n"
            "planned = run_cmd(['plan', 'steps.two'])\n"
            "assert planned.exit_code == 0, planned.stderr\n"
            "import steps\n"
            "print(type(steps.two).__name__, steps.two(5))\n")
    proc = run_python("-c", code, cwd=tmp_path, env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}",
                                                     "DBND__RUN__DATA_ROOT": "data"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "DbndPipeline 7"
