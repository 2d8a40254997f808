"""Opening and closing runs: a run's context built once from configuration resolved once.

`open_run(resolved)` chooses the run's Prefect API (`run.api`; nothing is started yet) and its storage (a
storage block is loaded through that API), resolves `run.task_version = now` once for the whole run, and
returns the `RunContext` every room reads. `ensure_run()` uses the run in effect or opens and enters a new
one for the block (a script's or notebook's top-level call); when that run ends, what it left queued for
Prefect is arranged to be sent before the process exits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Iterator

from dbnd_prefect.context import RunContext, current_run, entered, set_last_run
from dbnd_prefect.runtime.prefect_api import ApiChoice, choose_api, use_api
from dbnd_prefect.runtime.storage import resolve_storage
from dbnd_prefect.versioning.call_signature import resolve_version

if TYPE_CHECKING:
    from dbnd_prefect.config.model import DbndConfig
    from dbnd_prefect.config.resolved import ResolvedConfig


def api_of(run: RunContext) -> ApiChoice:
    """The Prefect API `run` talks to (`run.api`), chosen once per run."""
    if run.api is None:
        run.api = choose_api(run.settings.api)
    return run.api


def connect(run: RunContext) -> str | None:
    """Point this process's Prefect at the run's API (starting the local server if needed); its URL."""
    return use_api(api_of(run))


def open_run(resolved: "ResolvedConfig", command_line: list[str] | None = None) -> RunContext:
    """The context of a new run of `resolved` configuration (not yet in effect: see `entered`)."""
    settings = resolved.settings
    run = RunContext(
        resolved=resolved,
        storage=None,  # type: ignore[arg-type] - chosen next, through the run's API when it is a block
        run_date=settings.task_target_date or dt.date.today(),
        task_version=resolve_version(settings.task_version),
        run_uid=uuid.uuid4().hex[:12],
        command_line=command_line,
    )
    run.storage = resolve_storage(settings, lambda: connect(run))
    return run


def open_run_from(config: "DbndConfig | None" = None, command_line: list[str] | None = None) -> RunContext:
    """A new run of `config` (default: the current configuration), resolved once."""
    from dbnd_prefect.config import current_config, resolve_run_config

    return open_run(resolve_run_config(config if config is not None else current_config()), command_line)


@contextlib.contextmanager
def running(run: RunContext) -> Iterator[RunContext]:
    """Make `run` (a new top-level run) the run in effect for the block, and close it after."""
    try:
        with entered(run):
            yield run
    finally:
        close_run(run)


@contextlib.contextmanager
def ensure_run(config: "DbndConfig | None" = None) -> Iterator[RunContext]:
    """Use the run in effect, or open a new one (of `config`, default the current one) for the block."""
    existing = current_run()
    if existing is not None:
        yield existing
        return
    with running(open_run_from(config)) as run:
        yield run


def close_run(run: RunContext) -> None:
    """A top-level run has ended, failed or not: remember it and arrange for what it queued to be sent."""
    from dbnd_prefect.fingerprint import clear_fingerprint_cache
    from dbnd_prefect.runtime.exit_hooks import finish_run

    finish_run(run)
    set_last_run(run)
    clear_fingerprint_cache()  # the next run must see values edited in place


__all__ = ["open_run", "open_run_from", "running", "ensure_run", "close_run", "api_of", "connect"]
