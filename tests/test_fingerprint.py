"""Fingerprints of data and code: stable across processes, sensitive to what matters, blind to what does not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import dbnd_prefect
from dbnd_prefect.errors import DbndError, UnfingerprintableValueError
from dbnd_prefect.fingerprint import (
    clear_fingerprint_cache,
    describe_code,
    fingerprint_code,
    fingerprint_value,
)

PACKAGE_ROOT = str(pathlib.Path(dbnd_prefect.__file__).resolve().parents[1])

# Built identically in this process and in the subprocesses below.
SAMPLES_SOURCE = """
import datetime as dt
import numpy as np
import pandas as pd

def mixed_frame():
    return pd.DataFrame({
        "i": [3, 1, 2],
        "f": [0.5, np.nan, -2.0],
        "s": ["x", None, "zz"],
        "o": np.array(["a", 1, None], dtype=object),
        "c": pd.Categorical(["u", "v", "u"]),
        "n": pd.array([1, None, 3], dtype="Int64"),
        "b": [True, False, True],
        "t": pd.date_range("2024-01-01", periods=3, tz="Europe/Paris"),
    }, index=pd.Index(["r1", "r2", "r3"], name="row"))

SAMPLES = {
    "frame": mixed_frame,
    "dict_with_set": lambda: {"tags": {"alpha", "beta", "gamma", "delta"}, "n": 1, ("k", 2): frozenset({"x", "y"})},
    "nested_list": lambda: [1, [2.5, ["three", None, [b"four", (5, {"six": 6})]]], dt.date(2024, 1, 1)],
}
"""
_namespace: dict = {}
exec(SAMPLES_SOURCE, _namespace)
SAMPLES = _namespace["SAMPLES"]


def _digests_in_subprocess(hash_seed: str) -> dict[str, str]:
    script = SAMPLES_SOURCE + textwrap.dedent(
        """
        from dbnd_prefect.fingerprint import fingerprint_value
        for name, make in SAMPLES.items():
            print(name, fingerprint_value(make()))
        """
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": PACKAGE_ROOT}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return dict(line.split() for line in out.stdout.splitlines())


def test_digests_are_identical_across_processes_and_hash_seeds():
    first, second = _digests_in_subprocess("1"), _digests_in_subprocess("4242")
    here = {name: fingerprint_value(make()) for name, make in SAMPLES.items()}
    assert first == second == here
    assert len(set(here.values())) == 3


def test_importing_and_hashing_plain_values_does_not_import_pandas():
    script = (
        "import sys\n"
        "from dbnd_prefect.fingerprint import fingerprint_value, fingerprint_code\n"
        "fingerprint_value({'a': [1, 2.0, {'x'}]})\n"
        "fingerprint_code(fingerprint_value)\n"
        "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- data: sensitivity ----------------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return _namespace["mixed_frame"]()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.assign(f=[0.5, np.nan, -2.5]), id="one float value"),
        pytest.param(lambda df: df.assign(s=["x", None, "zy"]), id="one string value"),
        pytest.param(lambda df: df.assign(s=["x", "", "zz"]), id="null vs empty string"),
        pytest.param(lambda df: df.assign(n=pd.array([1, 2, 3], dtype="Int64")), id="NA filled"),
        pytest.param(lambda df: df.assign(c=pd.Categorical(["u", "v", "v"])), id="one category"),
        pytest.param(lambda df: df.astype({"i": "int32"}), id="dtype"),
        pytest.param(lambda df: df.astype({"i": "float64"}), id="int to float, same numbers"),
        pytest.param(lambda df: df.rename(columns={"i": "j"}), id="column name"),
        pytest.param(lambda df: df[list(df.columns[::-1])], id="column order"),
        pytest.param(lambda df: df.set_axis(["r1", "r2", "r4"]), id="index value"),
        pytest.param(lambda df: df.rename_axis("other"), id="index name"),
        pytest.param(lambda df: df.reset_index(drop=True), id="index replaced by range"),
        pytest.param(lambda df: df.iloc[:2], id="fewer rows"),
    ],
)
def test_a_change_that_matters_changes_the_digest(change):
    assert fingerprint_value(change(_frame())) != fingerprint_value(_frame())


def test_equal_frames_built_differently_have_equal_digests():
    values = np.arange(12, dtype=np.float64).reshape(4, 3)
    from_columns = pd.DataFrame({"a": values[:, 0], "b": values[:, 1], "c": values[:, 2]})
    from_2d_array = pd.DataFrame(values, columns=["a", "b", "c"])  # one strided block, not three columns
    from_records = pd.DataFrame.from_records([tuple(r) for r in values.tolist()], columns=["a", "b", "c"])
    from_concat = pd.concat([from_columns.iloc[:1], from_columns.iloc[1:]])  # materialised int64 index
    from_arrow = pa.table({"a": values[:, 0], "b": values[:, 1], "c": values[:, 2]}).to_pandas()
    digests = {fingerprint_value(df) for df in (from_columns, from_2d_array, from_records, from_concat, from_arrow)}
    assert len(digests) == 1


def test_string_columns_hash_alike_whatever_their_storage_and_chunking():
    strings = ["a", None, "bcd", "", "é"]
    arrow_chunked = pd.Series(
        pd.arrays.ArrowStringArray(pa.chunked_array([["a", None], ["bcd", "", "é"]])), dtype="string[pyarrow]"
    )
    arrow_single = pd.Series(strings, dtype="string[pyarrow]")
    python_storage = pd.Series(strings, dtype="string[python]")
    assert fingerprint_value(arrow_chunked) == fingerprint_value(arrow_single) == fingerprint_value(python_storage)
    assert fingerprint_value(pd.Series(strings)) == fingerprint_value(pd.Series(strings))  # pandas 3 str dtype
    assert fingerprint_value(pd.Series(strings)) != fingerprint_value(pd.Series(["a", None, "bcd", "", "e"]))
    sliced = pa.array(["zz"] + strings).slice(1)  # non-zero offset into shared buffers
    assert fingerprint_value(sliced) == fingerprint_value(pa.array(strings, pa.large_string()))
    assert fingerprint_value(sliced) == fingerprint_value(pa.chunked_array([strings[:3], strings[3:]]))


def test_values_hidden_under_nulls_and_nan_payloads_do_not_matter():
    masked = pd.array([1, 2, 3], dtype="Int64")
    masked[1] = pd.NA  # the slot keeps its old 2 underneath
    assert fingerprint_value(pd.Series(masked)) == fingerprint_value(pd.Series([1, None, 3], dtype="Int64"))
    negative_nan = np.array([1.0, -float("nan")])  # what 0.0/0.0 gives on x86: sign bit set
    assert negative_nan.view(np.uint64)[1] != np.array([np.nan]).view(np.uint64)[0]
    assert fingerprint_value(negative_nan) == fingerprint_value(np.array([1.0, np.nan]))


def test_numpy_arrays_hash_by_dtype_shape_and_values_not_layout():
    a = np.arange(24, dtype=np.int64).reshape(4, 6)
    assert fingerprint_value(np.asfortranarray(a)) == fingerprint_value(a)
    assert fingerprint_value(a[:, ::2]) == fingerprint_value(np.ascontiguousarray(a[:, ::2]))
    assert fingerprint_value(a.reshape(6, 4)) != fingerprint_value(a)
    assert fingerprint_value(a.astype(np.int32)) != fingerprint_value(a)
    assert fingerprint_value(np.array(["a", None], dtype=object)) != fingerprint_value(np.array(["a", "None"], dtype=object))


def test_containers_are_order_insensitive_only_where_python_is():
    assert fingerprint_value({"a": 1, "b": 2}) == fingerprint_value({"b": 2, "a": 1})
    assert fingerprint_value({3, 1, 2}) == fingerprint_value({2, 3, 1})
    assert fingerprint_value([1, 2]) != fingerprint_value([2, 1])
    assert fingerprint_value([1, 2]) != fingerprint_value((1, 2))
    assert fingerprint_value(1) != fingerprint_value(1.0) != fingerprint_value("1")
    assert fingerprint_value(True) != fingerprint_value(1)
    assert fingerprint_value(["ab", "c"]) != fingerprint_value(["a", "bc"])


@dataclasses.dataclass
class Settings:
    rate: float
    when: dt.datetime
    out: pathlib.Path


def test_dataclasses_pydantic_models_and_dates_hash_by_their_fields():
    from pydantic import BaseModel

    class Model(BaseModel):
        name: str
        sizes: list[int]

    base = Settings(0.5, dt.datetime(2024, 1, 1, 12), pathlib.Path("/data/out"))
    assert fingerprint_value(base) == fingerprint_value(Settings(0.5, dt.datetime(2024, 1, 1, 12), pathlib.Path("/data/out")))
    assert fingerprint_value(base) != fingerprint_value(dataclasses.replace(base, rate=0.6))
    assert fingerprint_value(base) != fingerprint_value(dataclasses.replace(base, when=dt.datetime(2024, 1, 1, 13)))
    assert fingerprint_value(Model(name="a", sizes=[1])) == fingerprint_value(Model(name="a", sizes=[1]))
    assert fingerprint_value(Model(name="a", sizes=[1])) != fingerprint_value(Model(name="a", sizes=[2]))


def test_unpicklable_value_raises_an_error_naming_its_type_and_place():
    with pytest.raises(UnfingerprintableValueError) as info:
        fingerprint_value({"config": {"lock": [1, threading.Lock()]}})
    assert isinstance(info.value, ValueError) and isinstance(info.value, DbndError)
    message = str(info.value)
    assert "_thread.lock" in message and "['config']['lock'][1]" in message


def test_self_referencing_containers_do_not_hang():
    loop: list = [1]
    loop.append(loop)
    other: list = [1]
    other.append(other)
    assert fingerprint_value(loop) == fingerprint_value(other)
    mapping: dict = {"a": 1}
    mapping["self"] = mapping
    assert fingerprint_value(mapping)


def test_large_objects_are_memoized_until_the_cache_is_cleared():
    clear_fingerprint_cache()
    array = np.arange(1_000_000, dtype=np.float64)  # 8 MB
    first = fingerprint_value(array)
    array[0] = -1.0  # mutation in place: within a run the memoized digest is reused...
    assert fingerprint_value(array) == first
    assert fingerprint_value({"x": array}) == fingerprint_value({"x": array})
    clear_fingerprint_cache()  # ...and a cleared cache sees the change
    assert fingerprint_value(array) != first


# --- code -------------------------------------------------------------------------------------------------------


class Project:
    """A throwaway package on disk, imported for real and reloaded after edits."""

    def __init__(self, root: pathlib.Path, name: str) -> None:
        self.root, self.name = root, name
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")

    def write(self, module: str, source: str) -> None:
        (self.root / self.name / f"{module}.py").write_text(textwrap.dedent(source))

    def load(self, *modules: str):
        """Import (or reload, in the given order) the modules; return the last."""
        importlib.invalidate_caches()
        loaded = None
        for module in modules:
            full = f"{self.name}.{module}"
            loaded = importlib.reload(sys.modules[full]) if full in sys.modules else importlib.import_module(full)
        return loaded


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # edits within one second must not hit stale .pyc
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"proj_{tmp_path.name.replace('-', '_')}"
    proj = Project(tmp_path, name)
    proj.write("deep", "def scale(x):\n    return x * 2\n")
    proj.write(
        "helpers",
        f"""
        from {name} import deep
        THRESHOLD = 0.5

        def prepare(x):
            return deep.scale(x) > THRESHOLD

        def unrelated():
            return 1
        """,
    )
    proj.write(
        "tasks",
        f"""
        import json
        import pandas as pd
        from {name}.helpers import prepare

        def my_task(df):
            return pd.concat([df, df]), json.dumps(prepare(1))
        """,
    )
    yield proj
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_editing_a_helper_two_levels_down_changes_the_task_fingerprint(project):
    before = describe_code(project.load("deep", "helpers", "tasks").my_task)
    project.write("deep", "def scale(x):\n    return x * 3\n")
    after = describe_code(project.load("deep", "helpers", "tasks").my_task)
    assert after["fingerprint"] != before["fingerprint"]
    changed = {name for name in after["functions"] if after["functions"][name] != before["functions"].get(name)}
    assert changed == {f"{project.name}/deep.py:scale"}


def test_editing_an_unrelated_function_keeps_the_task_fingerprint(project):
    before = fingerprint_code(project.load("deep", "helpers", "tasks").my_task)
    source = (project.root / project.name / "helpers.py").read_text().replace("return 1", "return 42")
    (project.root / project.name / "helpers.py").write_text(source)
    assert fingerprint_code(project.load("deep", "helpers", "tasks").my_task) == before


def test_editing_a_constant_the_task_reads_changes_its_fingerprint(project):
    before = fingerprint_code(project.load("deep", "helpers", "tasks").my_task)
    source = (project.root / project.name / "helpers.py").read_text().replace("0.5", "0.7")
    (project.root / project.name / "helpers.py").write_text(source)
    assert fingerprint_code(project.load("deep", "helpers", "tasks").my_task) != before


def test_library_functions_are_not_followed(project):
    functions = describe_code(project.load("deep", "helpers", "tasks").my_task)["functions"]
    assert set(functions) == {
        f"{project.name}/tasks.py:my_task",
        f"{project.name}/helpers.py:prepare",
        f"{project.name}/helpers.py:THRESHOLD",
        f"{project.name}/deep.py:scale",
    }


def test_mutual_recursion_between_helpers_terminates(project):
    project.write(
        "recursive",
        """
        def ping(n):
            return pong(n - 1) if n else 0

        def pong(n):
            return ping(n - 1) if n else 1
        """,
    )
    functions = describe_code(project.load("recursive").ping)["functions"]
    assert set(functions) == {f"{project.name}/recursive.py:ping", f"{project.name}/recursive.py:pong"}


def test_classes_used_by_a_task_are_part_of_its_fingerprint(project):
    model = """
        class Scaler:
            def apply(self, x):
                return x * {factor}

        def fit(x):
            return Scaler().apply(x)
        """
    project.write("model", model.format(factor=2))
    before = fingerprint_code(project.load("model").fit)
    project.write("model", model.format(factor=5))
    assert fingerprint_code(project.load("model").fit) != before


def test_decorated_functions_and_prefect_tasks_fingerprint_as_their_function(project):
    from prefect import task

    plain = project.load("deep", "helpers", "tasks").my_task

    @functools.wraps(plain)
    def wrapper(*args, **kwargs):
        return plain(*args, **kwargs)

    assert fingerprint_code(task(plain)) == fingerprint_code(wrapper) == fingerprint_code(plain)


def test_code_without_source_is_fingerprinted_from_its_bytecode():
    def compile_function(body: str):
        namespace: dict = {"__name__": "__exec_only__"}
        exec(f"def f(x):\n    {body}\n", namespace)
        return namespace["f"]

    assert fingerprint_code(compile_function("return x + 1")) == fingerprint_code(compile_function("return x + 1"))
    assert fingerprint_code(compile_function("return x + 1")) != fingerprint_code(compile_function("return x + 2"))
