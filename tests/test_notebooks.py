"""Tasks and pipelines defined in notebook cells, executed by nbclient on a real ipykernel.

A Jupyter kernel runs cells in a thread with a running event loop, where Prefect's sync-compatible
functions return coroutines: the cells must still run, return values and be versioned like scripts.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK = Path(__file__).parent / "notebooks" / "versioned_tasks.ipynb"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_STATE = re.compile(r"Task run '(\w+)-\w+' - Finished in state (\w+)")


def _texts(cell: Any) -> list[str]:
    """Everything a user sees under a cell: printed text, Prefect's log lines, errors."""
    texts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            texts.append(output.text)
        elif output.output_type in ("display_data", "execute_result"):
            texts.append(str(output.get("data", {}).get("text/plain", "")))
        elif output.output_type == "error":
            texts.append(f"{output.ename}: {output.evalue}\n" + "\n".join(output.traceback))
    return [_ANSI.sub("", text) for text in texts]


def _printed(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def _task_states(cell: Any) -> dict[str, str]:
    """Each task's final Prefect state, as Prefect logs it under the cell."""
    return {m.group(1): m.group(2) for text in _texts(cell) for m in _TASK_STATE.finditer(text)}


def _assert_clean(cell: Any) -> None:
    assert not [o for o in cell.outputs if o.output_type == "error"], "\n".join(_texts(cell))
    shown = "\n".join(_texts(cell))
    for text in ("Traceback", "never awaited", "RuntimeWarning", "ERROR"):
        assert text not in shown, f"cell {cell.id}: {shown}"


@pytest.fixture
def notebook_dir(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder holding the notebook and its dbnd.toml; the kernel inherits this environment."""
    (workdir / "dbnd.toml").write_text('[run]\ndata_root = "nb-data"\n')
    shutil.copy(NOTEBOOK, workdir / NOTEBOOK.name)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "INFO")  # Prefect's state lines, as a user sees them
    monkeypatch.setenv("IPYTHONDIR", str(workdir.parent / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(workdir.parent / "jupyter-runtime"))
    return workdir


def test_notebook_tasks_run_versioned_and_reused(notebook_dir: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook_dir / NOTEBOOK.name, as_version=4)
    cells = {cell.id: cell for cell in nb.cells}
    index = {cell.id: i for i, cell in enumerate(nb.cells)}
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook_dir)}})

    def run(cell_id: str) -> Any:
        cell = cells[cell_id]
        client.execute_cell(cell, index[cell_id])
        _assert_clean(cell)
        return cell

    with client.setup_kernel():
        kernel_process = client.km.provisioner.process

        setup = run("setup")
        assert f"working directory: {notebook_dir}\n" in _printed(setup)
        assert f"Prefect API: {os.environ['PREFECT_API_URL']}\n" in _printed(setup)

        run("define-double")
        first = run("call-double")
        assert _printed(first) == "double(21) = 42; bodies run: 1\n"
        assert _task_states(first) == {"double": "Completed"}

        run("define-pipeline")
        assert _printed(run("call-pipeline")) == "double_and_add(5, 1) = 11; bodies run: 2\n"
        states = run("states")
        assert _printed(states) == "value: 11\ndouble: Cached\nadd: Cached\n"

        # the same cells executed again: stored outputs are reused, no body runs
        run("define-double")
        again = run("call-double")
        assert _printed(again) == "double(21) = 42; bodies run: 0\n"
        assert _task_states(again) == {"double": "Cached"}
        assert _printed(run("call-pipeline")) == "double_and_add(5, 1) = 11; bodies run: 0\n"

        # an edited task body is new code: it recomputes, and so does the task that uses its output
        cells["define-double"].source = cells["define-double"].source.replace("return 2 * x", "return x + x")
        run("define-double")
        edited = run("call-double")
        assert _printed(edited) == "double(21) = 42; bodies run: 1\n"
        assert _task_states(edited) == {"double": "Completed"}
        edited_pipeline = run("call-pipeline")
        assert _printed(edited_pipeline) == "double_and_add(5, 1) = 11; bodies run: 2\n"
        assert _task_states(edited_pipeline) == {"double": "Completed", "add": "Completed"}

    assert kernel_process.wait(timeout=30) is not None, "the kernel was left running"
    # the data root came from the notebook folder's dbnd.toml, as for a script run there
    stored = {p.parent.parent.name for p in (notebook_dir / "nb-data" / "local").glob("*/*/*/_manifest.json")}
    assert stored == {"double", "add"}
    assert not (notebook_dir / "data").exists()


def test_notebook_reopened_in_a_new_kernel_reuses_stored_outputs(notebook_dir: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    def execute_in_new_kernel() -> dict[str, Any]:
        nb = nbformat.read(notebook_dir / NOTEBOOK.name, as_version=4)
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook_dir)}}).execute()  # starts and stops a kernel
        for cell in nb.cells:
            if cell.cell_type == "code":
                _assert_clean(cell)
        return {cell.id: cell for cell in nb.cells}

    first = execute_in_new_kernel()
    assert _printed(first["call-double"]) == "double(21) = 42; bodies run: 1\n"
    assert _printed(first["call-pipeline"]) == "double_and_add(5, 1) = 11; bodies run: 2\n"

    reopened = execute_in_new_kernel()
    assert _printed(reopened["call-double"]) == "double(21) = 42; bodies run: 0\n"
    assert _task_states(reopened["call-double"]) == {"double": "Cached"}
    assert _printed(reopened["call-pipeline"]) == "double_and_add(5, 1) = 11; bodies run: 0\n"
    assert _task_states(reopened["call-pipeline"]) == {"double": "Cached", "add": "Cached"}
