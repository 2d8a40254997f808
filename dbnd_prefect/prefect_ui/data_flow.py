"""What each task run of a pipeline run read and wrote, gathered once the pipeline's task runs are done,
and handed to Prefect: artifacts a user reads in the UI (io_artifacts.py) and events that record the
lineage (lineage.py).

Facts come from the task manifests: a task run that ran wrote its own; a reused one (Prefect state
`Cached`) points at the manifest of the run that made the version, which says which flow run that was.
Everything shown here is redacted: no credentials in a URI, a link or a label.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from typing import Any, AsyncIterator, Iterator, Mapping, Sequence

from dbnd_prefect import prefect_internals
from dbnd_prefect.prefect_ui import io_artifacts as run_artifacts, lineage
from dbnd_prefect.prefect_ui.task_io import collect
from dbnd_prefect.redaction import one_line

logger = logging.getLogger("dbnd_prefect")

_deferred: contextvars.ContextVar[list[tuple] | None] = contextvars.ContextVar("dbnd_deferred_data_flow", default=None)
SWITCH = "DBND_PUBLISH_DATA_FLOW"  # "false" turns the artifacts and lineage events of pipeline runs off
PUBLISH_TIMEOUT = 60.0  # seconds one pipeline run's data flow may take to send
SETTLE_TIMEOUT = 10.0  # seconds a new run waits for the data flow of earlier runs (it goes on sending after)


def publish(pipeline: str, entries: Sequence[Mapping[str, Any]], flow_run_id: str | None, state: str) -> None:
    """Show a finished pipeline run's data flow in Prefect: artifacts per task run and per pipeline run,
    and lineage events.

    Done in the background, like Prefect's own logs and events: the pipeline does not wait for a request
    per task run; what is queued is sent before the process exits (`wait_until_published()` waits earlier).
    Inside a top-level pipeline call it is queued when the call returns (`sent_after`).
    Never fails the run: a problem is one warning line.
    """
    if flow_run_id is None or os.environ.get(SWITCH, "").strip().lower() in ("0", "false", "off", "no"):
        return
    deferred = _deferred.get()
    if deferred is not None:
        deferred.append((pipeline, [dict(e) for e in entries], flow_run_id, state))
        return
    _send(pipeline, entries, flow_run_id, state)


@contextlib.contextmanager
def sent_after() -> Iterator[None]:
    """Data flow published inside the block is queued when the block ends: a pipeline call returns before
    its artifacts and lineage events are built (which otherwise share the GIL with the run's last steps)."""
    token = _deferred.set([])
    try:
        yield
    finally:
        deferred = _deferred.get() or []
        _deferred.reset(token)
        for item in deferred:
            _send(*item)


def _send(pipeline: str, entries: Sequence[Mapping[str, Any]], flow_run_id: str, state: str) -> None:
    from prefect.settings import PREFECT_API_URL

    try:  # one publisher per API: its client is made when it starts
        DataFlowPublisher.instance(PREFECT_API_URL.value()).send(
            (pipeline, [dict(e) for e in entries], flow_run_id, state))
    except Exception as exc:
        logger.warning("Pipeline '%s': its data flow could not be shown in Prefect: %s", pipeline, one_line(exc))


def wait_until_published(timeout: float = 60.0) -> None:
    """Wait (at most `timeout` seconds) until the data flow of every finished pipeline run has been sent to
    the Prefect API; what is not sent by then is dropped with one warning."""
    import concurrent.futures

    # not `drain_all`: Prefect's services share one registry, and that would stop its log and event workers too
    for service in DataFlowPublisher.running():
        try:
            service.drained(timeout)
        except concurrent.futures.TimeoutError:
            logger.warning("The data flow of a pipeline run was not sent to Prefect within %.0f s: "
                           "its artifacts and lineage events are missing from the UI", timeout)


class _NoProgressNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Still processing items")


def wait_until_sent(timeout: float = SETTLE_TIMEOUT) -> bool:
    """Wait (at most `timeout` seconds) until the data flow queued so far has been handled, leaving the
    publisher running; whether it was. A new top-level run calls this before it starts: Prefect's SQLite
    server answers a flow-run create that meets artifact writes with 503, and its client retries ~2 s later."""
    return all(publisher.wait_sent(timeout) for publisher in DataFlowPublisher.running())


class DataFlowPublisher(prefect_internals.background_queue()):  # type: ignore[misc]
    """Publishes queued pipeline runs (pipeline, task-run summaries, flow run id, state) on Prefect's loop
    thread: manifests are read and events emitted in a worker thread, artifacts created with one client."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._pending = 0  # items sent and not handled yet
        self._settled = threading.Condition()
        # Prefect's services note each drain with a warning; a drain is the normal end of a run here
        self._logger = logging.getLogger("dbnd_prefect.prefect_ui.data_flow")
        if not any(isinstance(f, _NoProgressNotes) for f in self._logger.filters):
            self._logger.addFilter(_NoProgressNotes())

    def send(self, item: tuple) -> None:
        with self._settled:
            self._pending += 1
        try:
            super().send(item)
        except BaseException:
            self._handled()
            raise

    def _handled(self) -> None:
        with self._settled:
            self._pending -= 1
            self._settled.notify_all()

    def wait_sent(self, timeout: float) -> bool:
        """Whether every item sent so far was handled within `timeout` seconds."""
        with self._settled:
            return self._settled.wait_for(lambda: self._pending <= 0, timeout)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        from prefect.client.orchestration import get_client

        async with get_client() as client:
            self._client = client
            yield

    async def handle(self, item: tuple) -> None:
        import asyncio

        pipeline, entries, flow_run_id, state = item

        async def publish() -> None:
            flows = await asyncio.to_thread(collect, entries)
            await asyncio.to_thread(lineage.emit_lineage, flows, flow_run_id)
            await run_artifacts.create_artifacts(self._client, pipeline, flows, flow_run_id, state)

        try:  # bounded: a server that stops answering must not hold the process at exit (Prefect drains unbounded)
            await asyncio.wait_for(publish(), PUBLISH_TIMEOUT)
        except asyncio.TimeoutError:
            logger.warning("Pipeline '%s': its data flow was not shown in Prefect: the API did not answer within "
                           "%.0f s", pipeline, PUBLISH_TIMEOUT)
        except Exception as exc:
            logger.warning("Pipeline '%s': its data flow could not be shown in Prefect: %s", pipeline, one_line(exc))
        finally:
            self._handled()
