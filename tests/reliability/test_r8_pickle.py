"""R8: a pickle the user's runs did not write (outside the data root, or a remote URI) is not loaded into a
task unless explicitly allowed (`run.allow_foreign_pickle = true`, or `Data(allow_pickle=True)` on the
parameter); the refusal is one error naming the task, parameter and URI and saying how to allow it (exit 2
from `dbnd run`), and no code from the file runs. Pickles a task stored under the data root load as always.

The hostile pickle here creates a marker file when it is unpickled: the marker's absence proves nothing ran.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Annotated, Any

import pytest

from dbnd_prefect import Data, task
from dbnd_prefect.config import config_context
from dbnd_prefect.errors import DbndError
from dbnd_prefect.pytest_plugin import run_cmd
from dbnd_prefect.context import last_run

pytestmark = pytest.mark.slow


class Hostile:
    """Unpickling it touches `marker` (what a real attacker would replace by any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def hostile_pickle(path: Path, marker: Path, opener: Any = open) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wb") as f:
        pickle.dump({"hostile": Hostile(marker)}, f)
    return path


@task
def use_obj(obj: dict) -> int:
    return len(obj)


@task
def use_trusted(obj: Annotated[dict, Data(allow_pickle=True)]) -> int:
    return len(obj)


@task(output_formats="pickle")
def make_obj(n: int = 3) -> dict:
    return {str(i): i for i in range(n)}


def assert_refused(error: DbndError, uri: str, marker: Path) -> None:
    text = str(error)
    assert "task 'use_obj', parameter 'obj'" in text and uri in text, text
    assert "refusing to load the pickle" in text and "outside the data root" in text, text
    assert "run.allow_foreign_pickle = true" in text and "Data(allow_pickle=True)" in text, text
    assert error.exit_code == 2
    assert not marker.exists(), "code from the pickle ran"


@pytest.mark.parametrize("where", ["outside", "compressed", "dotdot", "symlink"])
def test_local_pickle_outside_the_data_root_is_refused(where, workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    marker = elsewhere / "code-ran"
    if where == "compressed":
        import gzip

        path = hostile_pickle(elsewhere / "obj.pkl.gz", marker, gzip.open)
        given = str(path)
    else:
        path = hostile_pickle(elsewhere / "obj.pkl", marker)
        given = str(path)
        if where == "dotdot":  # spelled as if it were inside the data root
            given = str(workdir / "data" / os.path.relpath(path, workdir / "data"))
        elif where == "symlink":  # a link inside the data root to a file outside it
            (workdir / "data").mkdir(exist_ok=True)
            (workdir / "data" / "obj.pkl").symlink_to(path)
            given = str(workdir / "data" / "obj.pkl")
    with pytest.raises(DbndError) as error:
        use_obj(given)
    assert_refused(error.value, given if where != "dotdot" else str(path), marker)
    assert not list((workdir / "data").glob("*/*/use_obj")), "the refused task wrote outputs"


def test_cli_refuses_with_one_line_and_exit_2(workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    marker = elsewhere / "code-ran"
    path = hostile_pickle(elsewhere / "obj.pkl", marker)
    result = run_cmd(["run", "tests.reliability.test_r8_pickle.use_obj", "--set", f"obj={path}"])
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("dbnd: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(path) in errors[0] and "run.allow_foreign_pickle" in errors[0], errors[0]
    assert not marker.exists()


def test_remote_pickle_outside_the_data_root_is_refused(workdir, s3_bucket, tmp_path):
    import boto3

    marker = tmp_path / "code-ran"
    boto3.session.Session().client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).put_object(
        Bucket=s3_bucket, Key="shared/obj.pkl", Body=pickle.dumps({"hostile": Hostile(marker)}))
    uri = f"s3://{s3_bucket}/shared/obj.pkl"
    with pytest.raises(DbndError) as error:
        use_obj(uri)
    assert_refused(error.value, uri, marker)
    # a data root in the same bucket whose name is a prefix of the file's folder does not make it trusted
    with config_context({"run.data_root": f"s3://{s3_bucket}/shar"}), pytest.raises(DbndError) as error:
        use_obj(uri)
    assert_refused(error.value, uri, marker)


def test_pickle_under_an_s3_data_root_loads(workdir, s3_bucket):
    with config_context({"run.data_root": f"s3://{s3_bucket}/root"}):
        make_obj(4)
        stored = last_run().task_runs[0]["outputs"]["result"]
        assert stored.startswith(f"s3://{s3_bucket}/root/") and stored.endswith(".pkl")
        assert use_obj(stored) == 4


def test_pickle_a_task_stored_under_the_data_root_loads(workdir):
    make_obj(5)
    stored = last_run().task_runs[0]["outputs"]["result"]
    assert stored.endswith(".pkl") and use_obj(stored) == 5


def test_foreign_pickle_loads_when_allowed_by_configuration_or_parameter(workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    path = elsewhere / "obj.pkl"
    path.write_bytes(pickle.dumps({"a": 1, "b": 2}))
    with config_context({"run.allow_foreign_pickle": "true"}):
        assert use_obj(str(path)) == 2
    assert use_trusted(str(path)) == 2
    marker = elsewhere / "code-ran"
    hostile = hostile_pickle(elsewhere / "hostile.pkl", marker)
    use_trusted(str(hostile))
    assert marker.exists(), "the allowed pickle was not loaded"


@pytest.mark.parametrize("forgery", ["payload swapped, digest kept", "names cloudpickle, digest recomputed"])
def test_a_forged_cache_record_is_never_unpickled(forgery, workdir, tmp_path, caplog):
    """A cache record in the data root is verified whole before Prefect decodes it: one whose pickle was
    swapped, or that names a serializer dbnd does not write records with, is recomputed with a warning."""
    import base64
    import json
    import logging

    import xxhash

    assert make_obj(6) == {str(i): i for i in range(6)}
    entry = last_run().task_runs[0]
    path = workdir / "data" / ".dbnd" / "prefect-records" / entry["signature"]
    data = path.read_bytes()
    start = data.index(b'"record":') + len(b'"record":')
    record = json.loads(data[start:-1])
    marker = tmp_path / "code-ran"
    record["result"] = base64.encodebytes(pickle.dumps(Hostile(marker))).decode()
    if forgery.startswith("names cloudpickle"):
        record["metadata"]["serializer"] = {"type": "pickle", "picklelib": "cloudpickle", "picklelib_version": None}
    body = json.dumps(record, separators=(",", ":")).encode()
    digest = data[start - len(b'","record":') - 32:start - len(b'","record":')]
    if forgery.startswith("names cloudpickle"):
        digest = xxhash.xxh3_128_hexdigest(body).encode()
    path.write_bytes(b'{"dbnd_record":1,"xxh3_128":"' + digest + b'","record":' + body + b"}")
    with caplog.at_level(logging.WARNING, logger="dbnd_prefect"):
        assert make_obj(6) == {str(i): i for i in range(6)}
    assert not marker.exists(), "code from the forged record ran"
    assert last_run().task_runs[0]["state"] == "Completed"  # recomputed, not reused
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "'make_obj'" in warnings[0] and "cache record" in warnings[0], warnings
    assert make_obj(6) == {str(i): i for i in range(6)} and last_run().task_runs[0]["state"] == "Cached"
