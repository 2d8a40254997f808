"""URIs to file systems: parsing, cached instances, storage options, and missing-backend messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbnd_prefect.errors import TargetError
from dbnd_prefect.targets import (
    Target,
    get_filesystem,
    normalize_uri,
    register_storage_options,
    split_uri,
)
from dbnd_prefect.targets.filesystem import clear_filesystem_cache, filesystem_for_uri

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def test_local_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert split_uri("rel/x.csv") == ("file", str(tmp_path / "rel" / "x.csv"))
    assert split_uri(Path("rel") / "x.csv") == ("file", str(tmp_path / "rel" / "x.csv"))
    assert split_uri("~/x.csv") == ("file", str(tmp_path / "home" / "x.csv"))
    assert split_uri("file:///data/x.csv") == ("file", "/data/x.csv")
    assert split_uri("/data/../data/x.csv") == ("file", "/data/x.csv")
    assert normalize_uri("file:///data/x.csv") == "/data/x.csv"
    assert normalize_uri("rel/x.csv") == str(tmp_path / "rel" / "x.csv")


@pytest.mark.parametrize("uri,expected", [
    ("s3://bucket/key/x.csv", ("s3", "bucket/key/x.csv")),
    ("gs://bucket/x.csv", ("gs", "bucket/x.csv")),
    ("gcs://bucket/x.csv", ("gcs", "bucket/x.csv")),
    ("az://container/x.csv", ("az", "container/x.csv")),
    ("abfs://container/x.csv", ("abfs", "container/x.csv")),
    ("abfss://container@account.dfs.core.windows.net/x.csv", ("abfss", "container/x.csv")),
    ("hdfs://namenode:8020/data/x.csv", ("hdfs", "/data/x.csv")),
    ("memory://bucket/x.csv", ("memory", "/bucket/x.csv")),
    ("https://example.org/x.csv", ("https", "https://example.org/x.csv")),
])
def test_remote_uris_split_as_fsspec_does(uri, expected):
    assert split_uri(uri) == expected
    assert normalize_uri(uri) == uri


def test_filesystems_are_cached_per_protocol_and_options():
    clear_filesystem_cache()
    first = get_filesystem("memory")
    assert get_filesystem("memory") is first
    assert filesystem_for_uri("memory://b/x")[0] is first
    clear_filesystem_cache()
    assert get_filesystem("memory") is not first


def test_registered_storage_options_build_the_filesystem():
    calls = []

    def options():
        calls.append(1)
        return {"dbnd_test_flag": len(calls)}

    try:
        register_storage_options("memory", options)
        fs = get_filesystem("memory")
        assert fs.storage_options == {"dbnd_test_flag": 1}
        # options are re-read on every lookup: a changed value gives another instance
        assert get_filesystem("memory").storage_options == {"dbnd_test_flag": 2}
        register_storage_options("memory", {"dbnd_test_flag": "static"})
        assert get_filesystem("memory").storage_options == {"dbnd_test_flag": "static"}
        assert get_filesystem("memory") is get_filesystem("memory")
    finally:
        register_storage_options("memory", {})
        clear_filesystem_cache()


def test_local_options_reach_the_local_filesystem(tmp_path):
    try:
        register_storage_options("file", {"auto_mkdir": True})
        assert Target(tmp_path / "x.txt").fs.auto_mkdir is True
    finally:
        register_storage_options("file", {})
    assert Target(tmp_path / "x.txt").fs.auto_mkdir is False


def test_unknown_protocol_names_the_uri_without_credentials():
    with pytest.raises(TargetError) as err:
        Target("nosuch://user:hunter2@host/x.csv").exists()
    message = str(err.value)
    assert "cannot open 'nosuch://***@host/x.csv': unknown storage protocol 'nosuch://'" in message
    assert "hunter2" not in message


@pytest.mark.parametrize("uri,module,extra", [
    ("s3://bucket/in.csv", "s3fs", "aws"),
    ("gs://bucket/in.csv", "gcsfs", "gcp"),
    ("abfs://container/in.csv", "adlfs", "azure"),
])
def test_missing_backend_package_says_what_to_install(uri, module, extra):
    # a fresh interpreter in which the backend package cannot be imported, as on a machine without it
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from dbnd_prefect.targets import Target\n"
        f"try:\n    Target({uri!r}).load()\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith(f"TargetError cannot open '{uri}': the {uri.split(':')[0]}:// backend is not installed")
    assert f"pip install 'dbnd-prefect[{extra}]'" in out and f"pip install {module}" in out


def test_hdfs_without_hadoop_says_what_is_missing():
    env_before = {k: os.environ.get(k) for k in ("HADOOP_HOME", "CLASSPATH", "ARROW_LIBHDFS_DIR")}
    if any(env_before.values()):
        pytest.fail(f"this test expects a machine without Hadoop; found {env_before}")
    with pytest.raises(TargetError) as err:
        Target("hdfs://namenode:8020/data/in.csv").exists()
    message = str(err.value)
    assert message.startswith("cannot open 'hdfs://namenode:8020/data/in.csv': libhdfs / Hadoop is not available")
    assert "HADOOP_HOME" in message and "CLASSPATH" in message and "JAVA_HOME" in message
    assert "dlopen" not in message and "\n" not in message and len(message) < 600


def test_importing_targets_loads_no_pandas_or_pyarrow():
    code = (
        "import sys\n"
        "import dbnd_prefect.targets as t\n"
        "target = t.Target('/tmp/x.parquet'); target.format; t.type_key(dict); t.default_format_for('dict')\n"
        "print(','.join(m for m in ('pandas', 'pyarrow', 'numpy', 's3fs', 'gcsfs', 'adlfs') if m in sys.modules))\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
