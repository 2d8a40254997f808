"""A task run's outputs: each returned value written to its typed target, and the files the task wrote itself
moved into place, atomically; on a failure, nothing this call wrote is left behind."""

from __future__ import annotations

import contextlib
import pathlib
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from dbnd_prefect import layout
from dbnd_prefect.errors import DbndError, OutputError
from dbnd_prefect.targets import Target, type_key
from dbnd_prefect.targets.output_choice import OutputRequest, save_output

if TYPE_CHECKING:
    from dbnd_prefect.calls import BoundCall


def write_outputs(call: "BoundCall", values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Write each non-None output to its typed target; on any failure remove what this call wrote."""
    task, run, folder = call.task, call.run, call.output_dir
    written: list[Any] = []
    infos: dict[str, dict[str, Any]] = {}
    spec = None
    try:
        for spec in task.outputs:
            if not spec.returned:
                continue  # a file the task wrote itself (store_files)
            value = values[spec.name]
            if value is None:
                continue
            configured = run.config.get("formats", type_key(value))
            request = OutputRequest(spec.name, spec.format, configured, spec.save_options, spec.lines)
            target, info = save_output(folder, task.name, request, value)  # a format that holds the value
            written.append(target)
            info["store_version"] = target.fingerprint()
            infos[spec.name] = info
    except Exception as exc:
        for target in written:
            try:
                target.fs.rm(target.path, recursive=True)
            except Exception:
                pass
        name_task(exc, task.name, f"output '{spec.name if spec else '?'}'")
        raise
    return infos


def name_task(exc: BaseException, task_name: str, what: str) -> None:
    """Put the task (and which of its files) in front of a storage error that does not name it yet: the
    failure then names the task whose output could not be stored, not just the pipeline around it."""
    if isinstance(exc, DbndError) and exc.task is None and f"task '{task_name}'" not in exc.message:
        exc.add_context(f"task '{task_name}', {what}", task=task_name)


@contextlib.contextmanager
def staged_files(task: Any) -> Iterator[dict[str, pathlib.Path]]:
    """A fresh local path for each file the task writes itself (its `Output()` parameters), removed after."""
    specs = [s for s in task.outputs if not s.returned]
    if not specs:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix=f"dbnd-{layout.folder_name(task.name)}-") as folder:
        yield {s.name: pathlib.Path(folder) / f"{s.name}{s.file.extension}" for s in specs}


def store_files(call: "BoundCall", staged: Mapping[str, pathlib.Path]) -> dict[str, dict[str, Any]]:
    """Copy each file the task wrote into its output folder, atomically; OutputError for one it did not write."""
    task = call.task
    infos: dict[str, dict[str, Any]] = {}
    for name, path in staged.items():
        if not path.is_file():
            raise OutputError(f"task '{task.name}' did not write its output file '{name}' ({path.name})",
                              hint=f"write the file to the path the task receives as '{name}'")
        target = Target(f"{call.output_dir}/{path.name}")
        with target.writer("wb") as out, path.open("rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
        infos[name] = {"uri": target.uri, "format": None, "type_key": "pathlib.Path",
                       "bytes": path.stat().st_size, "checksum": target.checksum(),
                       "store_version": target.fingerprint()}
    return infos


__all__ = ["write_outputs", "name_task", "staged_files", "store_files"]
