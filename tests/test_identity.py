"""A task's identity is its source file's path in the project plus its qualified name, whatever the entry point.

So one function is one task (one signature, one code fingerprint) as a script's `__main__`, as an imported
module, loaded again under another name, or in a notebook; two functions sharing a name in two files are
two tasks, and naming them by the bare name is an error that names both.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from dbnd_prefect.definitions import registry as task_registry
from dbnd_prefect.api.results import load_task_outputs
from dbnd_prefect.identity import PROJECT_MARKERS, identity_of, project_root
from dbnd_prefect.pytest_plugin import CmdResult, run_cmd


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def dbnd(*args: str) -> CmdResult:
    return run_cmd(list(args))


def one_line_error(result: CmdResult) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result
    assert len(lines) == 1 and lines[0].startswith("dbnd: error: "), result.stderr
    return lines[0]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


TASKS_MODULE = """
    from dbnd_prefect import task
    from {package}.helpers import FACTOR, clean

    OFFSET = 3


    class Scaler:
        def apply(self, x):
            return x * FACTOR + OFFSET


    @task
    def {name}(x: int = 1) -> int:
        return Scaler().apply(clean(x))


    if __name__ == "__main__":
        print({name}.task_id, {name}.code_fingerprint)
    """


@pytest.fixture
def package(tmp_path: Path) -> tuple[Path, str, str]:
    """A project (dbnd.toml at its root) with a package whose task uses a helper, a class and constants."""
    package, name = unique("idt_pkg"), unique("idt_scale")
    write(tmp_path / "dbnd.toml", '[run]\ndata_root = "data"\n')
    write(tmp_path / package / "__init__.py", "")
    write(tmp_path / package / "helpers.py", "FACTOR = 2\n\n\ndef clean(x):\n    return abs(x)\n")
    write(tmp_path / package / "tasks.py", TASKS_MODULE.format(package=package, name=name))
    sys.path.insert(0, str(tmp_path))
    yield tmp_path, package, name
    sys.path.remove(str(tmp_path))
    for module in [m for m in sys.modules if m.split(".")[0] == package or m.startswith("idt_alias_")]:
        del sys.modules[module]


def _load_as(module_name: str, file: Path):
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def test_one_file_is_one_task_as_script_module_and_under_a_second_module_name(package):
    root, package_name, name = package
    script = subprocess.run([sys.executable, f"{package_name}/tasks.py"], cwd=root, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
    assert script.returncode == 0, script.stderr
    as_main = script.stdout.split()

    imported = getattr(__import__(f"{package_name}.tasks", fromlist=[name]), name)
    alias = getattr(_load_as(unique("idt_alias"), root / package_name / "tasks.py"), name)  # as Prefect loads
    assert alias.func.__module__ != imported.func.__module__

    expected = f"{package_name}/tasks.py:{name}"
    assert as_main == [expected, imported.code_fingerprint]
    assert imported.task_id == alias.task_id == expected
    assert alias.code_fingerprint == imported.code_fingerprint
    assert task_registry.definitions(name) == [alias]  # the second import replaced the first: not ambiguous
    assert task_registry.get(name) is alias


def test_two_files_defining_one_name_are_two_tasks_and_the_bare_name_is_ambiguous(workdir):
    name, first, second = unique("idt_twin"), unique("idt_first"), unique("idt_second")
    for module, factor in ((first, 2), (second, 3)):
        write(workdir / f"{module}.py", f"""
            from dbnd_prefect import task

            @task
            def {name}(x: int = 1) -> int:
                return {factor} * x
            """)

    error = one_line_error(dbnd("run", name, "-m", first, "-m", second))
    assert f"'{name}' is ambiguous" in error
    assert f"{first}.{name}" in error and f"{second}.{name}" in error
    assert f"pick one by its full name, e.g. {first}.{name}" in error
    assert not (workdir / "data").exists()

    first_task, second_task = task_registry.definitions(name)
    assert (first_task.task_id, second_task.task_id) == (f"{first}.py:{name}", f"{second}.py:{name}")
    listing = dbnd("show-tasks", "-m", first, "-m", second)
    assert f"{name}(x: int = 1) -> result    [{first}]" in listing.stdout
    assert f"{name}(x: int = 1) -> result    [{second}]" in listing.stdout

    for module, expected in ((first, 2), (second, 3)):
        result = dbnd("run", f"{module}.{name}", "--set", "x=1")
        assert result.exit_code == 0, result.stderr
        assert load_task_outputs(result.run, name) == {"result": expected}

    error = one_line_error(dbnd("versions", name))
    assert f"{first}.py:{name}" in error and f"{second}.py:{name}" in error
    error = one_line_error(dbnd("versions", name, "-m", first, "-m", second))
    assert f"{first}.{name}" in error and f"{second}.{name}" in error
    for module in (first, f"{first}.py:{name}"):
        listed = dbnd("versions", module if ":" in module else f"{module}.{name}")
        assert listed.exit_code == 0, listed.stderr
        rows = [line for line in listed.stdout.splitlines() if line.startswith("  20")]
        assert len(rows) == 1, listed.stdout  # only the first module's run, not the second's


def test_a_dotted_task_in_a_module_that_cannot_be_imported_says_so(workdir):
    write(workdir / "idt_local_module.py", "from dbnd_prefect import task\n")
    error = one_line_error(dbnd("run", "idt_no_such_modul.train"))
    assert "cannot import module 'idt_no_such_modul'" in error
    assert "no modules were searched" not in error
    error = one_line_error(dbnd("run", "idt_local_module"))
    assert "'idt_local_module' is a module, not a task: give -m idt_local_module TASK" in error


def test_project_root_is_the_nearest_folder_with_a_marker(tmp_path):
    if any((folder / marker).exists() for folder in tmp_path.parents for marker in PROJECT_MARKERS):
        pytest.skip("a project marker above the temporary folder")
    module = write(tmp_path / "repo" / "src" / "pkg" / "mod.py", "def f():\n    pass\n")
    write(tmp_path / "repo" / "src" / "pkg" / "__init__.py", "")
    assert project_root(module) == tmp_path / "repo" / "src"  # no marker: the folder above the top package
    loose = write(tmp_path / "loose" / "script.py", "")
    assert project_root(loose) == tmp_path / "loose"
    nested = write(tmp_path / "project" / "src" / "pkg" / "mod.py", "def f():\n    pass\n")
    write(tmp_path / "project" / "src" / "pkg" / "__init__.py", "")
    write(tmp_path / "project" / "pyproject.toml", "")
    write(tmp_path / "project" / "src" / "pkg" / "sub" / "prefect.yaml", "")
    assert project_root(nested) == tmp_path / "project"
    assert project_root(tmp_path / "project" / "src" / "pkg" / "sub") == tmp_path / "project" / "src" / "pkg" / "sub"
    assert identity_of(_load_as(unique("idt_alias"), nested).f) == "src/pkg/mod.py:f"


def test_installed_code_and_exec_code_have_stable_identities():
    from pandas import read_csv

    assert identity_of(read_csv) == "pandas/io/parsers/readers.py:read_csv"  # wherever the environment lives
    assert identity_of(json.dumps) == "json/__init__.py:dumps"
    namespace: dict = {"__name__": "__main__"}
    exec(compile("def made():\n    return 1\n", "<string>", "exec"), namespace)
    assert identity_of(namespace["made"]) == "<exec>:made"


def _notebook_identity(folder: Path, body: str) -> tuple[str, str]:
    """(task_id, code fingerprint) of a task defined in a notebook cell, printed by a real kernel."""
    import nbformat
    from nbclient import NotebookClient

    cell = nbformat.v4.new_code_cell(textwrap.dedent(f"""
        from dbnd_prefect import task

        SHIFT = 1

        @task
        def nb_shift(x: int = 1) -> int:
            return {body}

        print(nb_shift.task_id, nb_shift.code_fingerprint)
        """))
    notebook = nbformat.v4.new_notebook(cells=[cell])
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
    assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    task_id, fingerprint = printed.split()
    return task_id, fingerprint


def test_a_notebook_cell_task_has_one_identity_across_kernels(workdir, monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", str(workdir.parent / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(workdir.parent / "jupyter-runtime"))
    first = _notebook_identity(workdir, "x + SHIFT")
    again = _notebook_identity(workdir, "x + SHIFT")  # another kernel: another temporary cell file name
    edited = _notebook_identity(workdir, "x - SHIFT")
    assert first == again
    assert first[0] == edited[0] == "<notebook>:nb_shift"
    assert edited[1] != first[1]


def test_plan_says_when_a_task_moved_to_another_file(workdir):
    name, old, new = unique("idt_moving"), unique("idt_old_home"), unique("idt_new_home")
    write(workdir / f"{old}.py", f"""
        from dbnd_prefect import task

        @task
        def {name}(x: int = 1) -> int:
            return x + 1
        """)
    assert dbnd("run", f"{old}.py:{name}").exit_code == 0
    assert f"{name}  [hit]" in dbnd("plan", f"{old}.py:{name}").stdout
    (workdir / f"{old}.py").rename(workdir / f"{new}.py")
    plan = dbnd("plan", f"{new}.py:{name}")
    assert plan.exit_code == 0, plan.stderr
    assert f"{name}  [miss]" in plan.stdout
    assert f"task identity changed ({old}.py:{name} -> {new}.py:{name}: the file or function moved)" in plan.stdout
