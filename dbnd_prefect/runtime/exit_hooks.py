"""What a process owes Prefect before it exits: the runs' data flow and events sent, the temporary server settled.

- `EventsWorker - Still processing items` at exit: Prefect sends the client's events (task run
  states) from a queue, and warns when the queue is not empty when it is drained at exit. A run does
  not wait for the queue (raw Prefect does not either); `finish_run` registers, once, an exit step that
  runs before Prefect's drains and sends the run's data flow and events first (`send_queued_at_exit`).
- `task_run_recorder ... CancelledError` tracebacks at exit: the temporary server records task runs
  from those events, and Prefect stops it (at exit) while it is still writing the last ones.
  `finish_run` makes the process wait at exit, before Prefect stops its temporary server, until
  the server has recorded the run's task runs.
"""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
from typing import Any

from dbnd_prefect import prefect_internals

QUEUE_TIMEOUT = 30.0
SETTLE_TIMEOUT = 10.0
_READ_LIMIT = 200  # Prefect's API returns at most this many task runs per request
_UNSETTLED_LIMIT = 10_000  # task runs remembered for the temporary server's settling (the newest)

# task run id -> the state the client ended it in; bounded (a long-lived process keeps the newest)
_unsettled: collections.OrderedDict[str, str] = collections.OrderedDict()
_settle_registered = False
_send_registered = False
_lock = threading.Lock()


def finish_run(run: Any) -> None:
    """Call when a top-level run (`RunContext`) has ended, failed or not.

    Does not wait for Prefect's events: like Prefect's own, they are sent in the background, and what
    is still queued when the process exits is sent then (`send_queued_at_exit`). On Prefect's
    temporary server, also makes the process wait at exit, before Prefect stops that server, until
    the server has recorded the run's task runs. Cheap; never raises.
    """
    global _settle_registered
    if "prefect" not in sys.modules or getattr(run, "flow_run_id", None) is None:
        return  # no flow ran (a plan, a failed check): nothing was sent, and asking would start a server
    try:
        _register_send_at_exit()
        if not _on_temporary_server():
            return
        with _lock:
            for entry in getattr(run, "task_runs", []):
                if entry.get("task_run_id") and entry.get("state"):
                    _unsettled[str(entry["task_run_id"])] = str(entry["state"])
                    if len(_unsettled) > _UNSETTLED_LIMIT:
                        _unsettled.popitem(last=False)
            if not _settle_registered:
                # registered after Prefect registered its server's stop, so it runs before that
                atexit.register(_settle_server)
                _settle_registered = True
    except Exception:  # output hygiene must never fail a run
        pass


def _register_send_at_exit() -> None:
    global _send_registered
    with _lock:
        if _send_registered:
            return
        # Prefect drains its services in threading's exit hooks, last registered first: registered after
        # the run started them, this one runs before their drains, which then find nothing to note.
        prefect_internals.register_exit_hook_before_prefect(send_queued_at_exit)
        _send_registered = True


def send_queued_at_exit(timeout: float = QUEUE_TIMEOUT) -> None:
    """Send what runs left queued: their data flow (artifacts, lineage events), then Prefect's events."""
    try:
        if "dbnd_prefect.prefect_ui.data_flow" in sys.modules:
            from dbnd_prefect.prefect_ui.data_flow import wait_until_published

            wait_until_published(timeout)
        wait_for_events(timeout)
    except Exception:  # at exit: best effort, Prefect's own drain follows
        pass


def wait_for_events(timeout: float = QUEUE_TIMEOUT) -> None:
    """Wait (bounded) until Prefect's events worker has sent everything queued, without stopping it."""
    if "prefect.events.worker" not in sys.modules:
        return
    # the running workers only: `EventsWorker.instance()` would start a new one after a drain
    for worker in prefect_internals.running_events_workers():
        waiter = threading.Thread(target=worker.wait_until_empty, daemon=True, name="dbnd-wait-for-events")
        waiter.start()
        waiter.join(timeout)


def _on_temporary_server() -> bool:
    """True when this process talks to Prefect's temporary server (no API URL configured)."""
    if "prefect.server.api.server" not in sys.modules:
        return False
    from prefect.settings import get_current_settings

    return not get_current_settings().api.url


def _settle_server(timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait (bounded) until the temporary server has recorded each task run in its final state."""
    with _lock:
        expected = dict(_unsettled)
        _unsettled.clear()
    if not expected:
        return
    try:
        import uuid

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterId

        ids = list(expected)
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while ids and time.monotonic() < deadline:
                chunk = ids[:_READ_LIMIT]
                found = client.read_task_runs(
                    task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=[uuid.UUID(i) for i in chunk])),
                    limit=_READ_LIMIT)
                recorded = {str(r.id): r.state.name for r in found if r.state is not None}
                pending = [i for i in chunk if recorded.get(i) != expected[i]]
                ids = pending + ids[_READ_LIMIT:]
                if pending:
                    time.sleep(0.1)
    except Exception:  # at exit: the server is about to stop anyway
        pass
