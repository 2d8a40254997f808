"""The current configuration: a contextvar that tasks and pipelines read while they run, and what is in effect."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, Mapping

from dbnd_prefect.config.loader import load_config
from dbnd_prefect.config.model import DbndConfig
from dbnd_prefect.config.resolved import run_settings
from dbnd_prefect.config.tracking_settings import TrackingSettings, tracking_settings
from dbnd_prefect.context import current_run

_current: ContextVar[DbndConfig | None] = ContextVar("dbnd_config", default=None)
_loaded: dict[Path, DbndConfig] = {}
_lock = threading.Lock()


def current_config() -> DbndConfig:
    """The active config: the innermost `config_context`, else the project config of the cwd.

    The project config is loaded on first use per working directory and cached, so later
    changes to files or DBND__ variables are not seen until `reset_config_cache()`.
    """
    active = _current.get()
    if active is not None:
        return active
    cwd = Path.cwd().resolve()
    with _lock:
        if cwd not in _loaded:
            _loaded[cwd] = load_config(cwd=cwd)
        return _loaded[cwd]


def context_config() -> DbndConfig | None:
    """The config of the innermost `config_context` block in effect, or None outside any."""
    return _current.get()


def reset_config_cache() -> None:
    """Forget project configs loaded by `current_config()` (for tests and long-lived processes)."""
    with _lock:
        _loaded.clear()


@contextmanager
def config_context(values: Mapping[str, Any] | DbndConfig | None = None, **sections: Any) -> Iterator[DbndConfig]:
    """Make a config current inside the `with` block; nestable, and restored on exit.

    `values` is a whole DbndConfig (used as is, e.g. from `load_config(...)`) or a mapping
    `{"task.param": v}` / `{"task": {"param": v}}` layered over the current config as "set"
    values; keyword arguments add sections: `config_context(prepare_data={"raw_data": path})`.
    """
    if isinstance(values, DbndConfig):
        config = values
        additions: dict[str, Any] = dict(sections)
    else:
        config = current_config()
        additions = {**(values or {}), **sections}
    if additions:
        config = config.with_layer("set", additions, "config_context")
        run_settings(config)
    token = _current.set(config)
    try:
        yield config
    finally:
        _current.reset(token)


def config_in_effect() -> DbndConfig:
    """The configuration of the run in effect, else the current one (project files, environment, context)."""
    run = current_run()
    return run.config if run is not None else current_config()


def tracking_in_effect() -> TrackingSettings:
    """The tracking settings of the run in effect (resolved with it), else of the current configuration."""
    run = current_run()
    return run.tracking if run is not None else tracking_settings(current_config())
