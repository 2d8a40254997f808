"""Which Prefect API a run talks to, and the Prefect settings a run is made with.

`run.api` chooses:
- unset (the default): Prefect's own setting when one is configured (PREFECT_API_URL, a Prefect
  profile, a worker's deployed run), else `local`;
- `local`: the shared background server of PREFECT_HOME (see local_server.py), started on first use;
- `temporary`: Prefect's per-process temporary server (slow: it starts and stops with each process);
- an `http(s)://.../api` URL: that server.

The choice is applied once per process, before the first flow runs, by pointing Prefect's process-wide
settings at the URL, so every thread and service of Prefect (events, logs) and every subprocess uses it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from typing import Any, Iterator

from dbnd_prefect import prefect_internals

LOCAL = "local"
TEMPORARY = "temporary"
LOCAL_CLIENT_MAX_RETRIES = "8"  # backing off 2, 4, ... 256 s: about 8.5 minutes at most


@dataclasses.dataclass(frozen=True)
class ApiChoice:
    """The API a run uses: mode `url`, `local`, `temporary` or `prefect` (Prefect's own setting)."""

    mode: str
    url: str | None
    source: str


def is_deployed_run() -> bool:
    """True inside a flow run started by a worker or runner from a deployment."""
    return bool(os.environ.get("PREFECT__FLOW_RUN_ID"))


def choose_api(configured: str | None, source: str = "run.api") -> ApiChoice:
    """The API for `run.api` = `configured` (None when unset); starts nothing."""
    from prefect.settings import get_current_settings

    prefect_url = get_current_settings().api.url
    if configured is None and prefect_url and not is_deployed_run():
        from dbnd_prefect.runtime.local_server import is_own_profile_url

        if is_own_profile_url(prefect_url):  # the profile names the local server dbnd started: it may need restarting
            return ApiChoice(LOCAL, None, "default (the local server, named in the Prefect profile by dbnd)")
    if is_deployed_run() or (configured is None and prefect_url):
        return ApiChoice("prefect", prefect_url, "Prefect settings (PREFECT_API_URL or profile)")
    if configured in (None, LOCAL):
        return ApiChoice(LOCAL, None, source if configured else "default")
    if configured == TEMPORARY:
        return ApiChoice(TEMPORARY, None, source)
    return ApiChoice("url", configured, source)


_applied: tuple[str, str | None] | None = None


def use_api(choice: ApiChoice) -> str | None:
    """Point this process's Prefect at `choice` (starting the local server if needed); the API URL."""
    global _applied
    if choice.mode == "prefect":
        return choice.url
    key = (choice.mode, choice.url)
    if _applied == key:
        return os.environ.get("PREFECT_API_URL")
    if choice.mode == LOCAL:
        from dbnd_prefect.runtime.local_server import ensure_running

        # Under bursts of concurrent runs the local server's SQLite answers 503 (database is locked); Prefect's
        # client gives up after 5 retries (~1 min) and the run fails. Runs on it retry longer (a user's value wins).
        os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", LOCAL_CLIENT_MAX_RETRIES)

        url: str | None = ensure_running()
    else:
        if choice.mode == TEMPORARY:
            from dbnd_prefect.runtime.console import quiet_server_settings

            quiet_server_settings()  # before Prefect starts the server: it copies this environment
        url = choice.url
    _set_process_api(url)
    _applied = key
    return url


def _set_process_api(url: str | None) -> None:
    from prefect.context import refresh_global_settings_context

    if url is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()


@contextlib.contextmanager
def prefect_session(api: ApiChoice) -> Iterator[None]:
    """Prefect settings for a flow called from a script, notebook or `dbnd run`, on the API `api` (the run's).

    A sync flow also joins its heartbeat thread on exit, which costs up to a second per call; heartbeats
    detect crashed runs of deployments, while a process that calls the flow itself sees the crash directly,
    so they are dropped there and kept for deployed runs.
    """
    use_api(api)
    if is_deployed_run():
        yield
        return
    import prefect.context

    context = prefect.context.get_settings_context()
    with contextlib.ExitStack() as stack:
        if context.settings.flows.heartbeat_frequency is not None:
            stack.enter_context(prefect.context.SettingsContext(
                profile=context.profile, settings=_without_heartbeat(context.settings)))
        stack.enter_context(_sync_client())
        yield


def _sync_client() -> Any:
    """Prefect's sync client context for a flow call, made with a TLS context kept for the process.

    Prefect's flow engine otherwise makes a client per flow call, and with it a TLS context that loads
    the CA bundle (20 ms on a quiet machine, over 100 ms beside a busy Spark driver), for http:// too.
    """
    from prefect.context import SyncClientContext

    if SyncClientContext.get() is not None:
        return contextlib.nullcontext()
    context = SyncClientContext(httpx_settings={"verify": _tls_context(*_tls_choice())})
    # Prefect hands the context's client to `get_client(sync_client=True)` (artifacts, the task engine) only
    # when the context was made with default settings; this client is what the defaults make.
    return prefect_internals.client_context_as_default(context)


def _tls_choice() -> tuple[bool, str | None]:
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    return bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value() or None


@functools.lru_cache(maxsize=4)
def _tls_context(insecure: bool, cert_file: str | None) -> Any:
    """The TLS context Prefect's client would make for these settings (its own rule), made once."""
    import ssl

    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if cert_file is None:
        import certifi

        cert_file = certifi.where()
    return ssl.create_default_context(cafile=cert_file)


_settings_cache: tuple[Any, Any] | None = None


def _without_heartbeat(settings: Any) -> Any:
    """`settings` with heartbeats off, built once per settings object (building costs ~40 ms)."""
    global _settings_cache
    if _settings_cache is None or _settings_cache[0] is not settings:
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

        _settings_cache = (settings, settings.copy_with_update(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
    return _settings_cache[1]

