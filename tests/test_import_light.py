"""`import dbnd_prefect` loads no heavy data or cloud library."""

from tests.conftest import run_python

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
