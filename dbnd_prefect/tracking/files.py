"""`log_artifact`: a file or a figure stored under the run's data root and linked from the Prefect run.

Stored atomically at `{task output folder}/artifacts/{key}{ext}` in a versioned task, else at
`{data_root}/{env}/{date}/artifacts/{flow run or "no-run"}/{key}{ext}`. Figures: anything with
`savefig` (matplotlib figures, seaborn grids), a matplotlib `Axes` (its figure), a Pillow image, or a
plotly figure (`write_image`, which needs kaleido). What cannot be stored is a warning, never a failed task.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import pathlib
import re
from typing import Any

from dbnd_prefect.tracking.publish import artifact_key, publish_link
from dbnd_prefect.tracking.notices import warn


def log_artifact(key: str, path_or_figure: Any) -> str | None:
    """Store a file (a path) or a figure under the data root, link it as `file-{key}`; returns its URI or None."""
    try:
        found = _content(str(key), path_or_figure)
        if found is None:
            return None
        content, ext = found
        uri = _store(f"{_folder()}/{_file_name(str(key))}{ext}", content)
    except Exception as exc:
        from dbnd_prefect.redaction import redact

        warn(f"tracking: artifact {key!r} was not stored: {redact(f'{type(exc).__name__}: {exc}')}")
        return None
    from dbnd_prefect.redaction import redact
    from dbnd_prefect.tracking.task_run import current_tracking

    shown = redact(uri)
    tracking = current_tracking()
    if tracking is not None:
        tracking.files[str(key)] = shown
    link = pathlib.Path(uri).resolve().as_uri() if "://" not in uri else shown
    publish_link(artifact_key("file", str(key)), link, text=f"{key}{ext} ({len(content):,} bytes)",
                 description=f"file **{key}** stored at `{shown}`")
    return uri


def _content(key: str, value: Any) -> tuple[bytes, str] | None:
    """(bytes, extension) of a file or figure; None (with a warning) for what cannot be stored."""
    if isinstance(value, (str, os.PathLike)):
        path = pathlib.Path(value)
        if not path.is_file():
            warn(f"tracking: log_artifact({key!r}): '{path}' is not a file; nothing stored (pass a file path or a "
                 "matplotlib figure)")
            return None
        return path.read_bytes(), "".join(path.suffixes[-2:]) or ""
    figure = getattr(value, "figure", None) if not hasattr(value, "savefig") else value  # an Axes -> its figure
    if figure is not None and hasattr(figure, "savefig"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue(), ".png"
    if type(value).__module__.split(".")[0] == "PIL" and hasattr(value, "save"):  # a Pillow image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue(), ".png"
    if hasattr(value, "write_image"):  # plotly
        try:
            return value.to_image(format="png"), ".png"
        except Exception as exc:
            warn(f"tracking: log_artifact({key!r}): the plotly figure could not be rendered ({type(exc).__name__}: "
                 f"{exc}); install kaleido, or pass a matplotlib figure or a file; nothing stored")
            return None
    warn(f"tracking: log_artifact({key!r}) cannot store a {type(value).__module__}.{type(value).__qualname__} "
         "(pass a file path or a matplotlib figure); nothing stored")
    return None


def _folder() -> str:
    from dbnd_prefect.tracking.task_run import current_tracking

    tracking = current_tracking()
    if tracking is not None and tracking.output_folder:
        return f"{tracking.output_folder}/artifacts"
    from dbnd_prefect.context import current_run

    run = current_run()
    if run is not None:
        root, env, date, run_id = run.data_root, run.env, run.run_date, run.flow_run_id or run.run_uid
    else:
        from dbnd_prefect.config import current_config, run_settings

        settings = run_settings(current_config())
        root, env, date, run_id = settings.data_root, settings.env, dt.date.today(), "no-run"
    return f"{str(root).rstrip('/')}/{env}/{date.isoformat()}/artifacts/{run_id}"


def _file_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._") or "artifact"


def _store(uri: str, content: bytes) -> str:
    """Write `content` to `uri` atomically, as is (no compression added for a `.gz` name)."""
    from dbnd_prefect.targets.atomic import atomic_write
    from dbnd_prefect.targets.filesystem import filesystem_for_uri, split_uri

    fs, path = filesystem_for_uri(uri)
    local = split_uri(uri)[0] == "file"
    if local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_write(fs, path, local=local) as result:
        result.file.write(content)
    return os.path.abspath(path) if local else uri
