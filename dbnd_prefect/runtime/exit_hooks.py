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
import contextlib
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

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


# --- Interrupts: Ctrl-C (SIGINT) or SIGTERM while a top-level run's flow runs --------------------------------
#
# The first signal stops the run: Python raises `RunInterrupted` in the main thread, so the flow body stops
# submitting tasks, Prefect cancels the task runs that have not started, and the caller marks the flow run
# (and its task runs and child flow runs, a `task_env` run among them) Cancelled on the Prefect server
# (`cancel_flow_run`). A task body already running in a thread cannot be stopped, and Prefect's thread pool
# waits for it: when the main thread has not come back within INTERRUPT_GRACE seconds, a watchdog thread
# marks the run Cancelled itself, says so (`on_stuck`) and ends the process. A second signal ends the
# process at once. The watchdog learns of each signal through Python's wakeup fd, so it sees SIGTERM even
# while Prefect's own SIGTERM handler is installed (during a flow run).

INTERRUPT_GRACE = 2.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(KeyboardInterrupt):
    """A top-level run stopped by SIGINT or SIGTERM; its flow run was marked Cancelled (`flow_run_name`)."""

    def __init__(self, signum: int, flow_run_name: str | None = None) -> None:
        self.signum = signum
        self.flow_run_name = flow_run_name
        super().__init__(self.line())

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    def line(self) -> str:
        return f"interrupted: flow run {self.flow_run_name} cancelled" if self.flow_run_name else "interrupted"


class InterruptGuard:
    """The interrupt state of one top-level run (see `interrupts_cancel`)."""

    def __init__(self, run: Any, on_stuck: Callable[[RunInterrupted], None], end_process: bool) -> None:
        self.run = run
        self.on_stuck = on_stuck
        self.end_process = end_process
        self.signum: int | None = None
        self.unwound = threading.Event()  # the main thread is back in the caller (or the run ended)
        self._finished: RunInterrupted | None = None
        self._finish_lock = threading.Lock()

    def finish(self, signum: int | None = None) -> RunInterrupted:
        """Mark the run's flow run Cancelled (once, whoever comes first); the error that says so."""
        with self._finish_lock:
            if self._finished is None:
                signum = self.signum or signum or signal.SIGINT
                name = cancel_flow_run(getattr(self.run, "flow_run_id", None), signal.Signals(signum).name)
                self._finished = RunInterrupted(signum, name)
            return self._finished


_active: InterruptGuard | None = None


def interrupted() -> bool:
    """True once the run in progress in this process was interrupted (task bodies that wait can stop)."""
    guard = _active
    return guard is not None and guard.signum is not None


def _handler(signum: int, frame: Any) -> None:
    guard = _active
    if guard is not None and guard.signum is None:
        guard.signum = signum
    raise RunInterrupted(signum)


@contextlib.contextmanager
def interrupts_cancel(run: Any, on_stuck: Callable[[RunInterrupted], None],
                      end_process: bool = True) -> Iterator[InterruptGuard | None]:
    """While the block runs `run`'s flow, SIGINT and SIGTERM stop it as described above.

    `end_process=False` (an interactive session: a notebook's kernel, the REPL) never ends the process: when a
    task body keeps the main thread waiting, the run is marked Cancelled and the caller gets RunInterrupted
    once the body has ended. In the main thread only (elsewhere, and inside another guard, the block runs
    unguarded: None). After a signal, the block's caller calls `guard.finish()` and raises what it returns.
    """
    global _active
    if _active is not None or threading.current_thread() is not threading.main_thread():
        yield None
        return
    import socket

    guard = InterruptGuard(run, on_stuck, end_process)
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    try:
        old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # pragma: no cover - main thread checked above
        reader.close()
        writer.close()
        yield None
        return
    old_handlers = {}
    for signum in _SIGNALS:
        previous = signal.getsignal(signum)
        # a process told to ignore the signal (nohup) keeps ignoring it; a handler set outside Python stays
        if previous is not signal.SIG_IGN and previous is not None:
            old_handlers[signum] = signal.signal(signum, _handler)
    _active = guard
    watchdog = threading.Thread(target=_watch, args=(guard, reader), daemon=True, name="dbnd-interrupts")
    watchdog.start()
    try:
        yield guard
    finally:
        guard.unwound.set()
        _active = None
        for signum, previous in old_handlers.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(old_fd)
        writer.close()  # the watchdog reads the end of the stream and stops


def _watch(guard: InterruptGuard, reader: Any) -> None:
    """Count the signals the wakeup fd reports: the first starts the grace period, the second ends the process."""
    count = 0
    with reader:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum not in _SIGNALS:
                    continue
                count += 1
                if guard.signum is None:
                    guard.signum = signum
                if count == 1:
                    threading.Thread(target=_grace, args=(guard,), daemon=True, name="dbnd-interrupt-grace").start()
                elif guard.end_process:  # an interactive session is never ended: KeyboardInterrupt as usual
                    _exit_now(guard.signum or signum, "dbnd: interrupted again: exiting now")


def _grace(guard: InterruptGuard) -> None:
    """After INTERRUPT_GRACE seconds without the main thread back: cancel the run, say so, end the process."""
    if guard.unwound.wait(INTERRUPT_GRACE):
        return
    try:
        error = guard.finish()
        if not guard.end_process:
            return
        guard.on_stuck(error)
    except BaseException:  # noqa: BLE001 - the process ends either way
        error = RunInterrupted(guard.signum or signal.SIGINT)
    _exit_now(error.signum, None)


def _exit_now(signum: int, line: str | None) -> None:
    import os

    try:
        if line:
            print(line, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


def cancel_flow_run(flow_run_id: Any, reason: str, on_worker: bool = False) -> str | None:
    """Mark flow run `flow_run_id` Cancelled on the Prefect server, with its task runs and child flow runs
    (a `task_env` run) that have not ended; its name (None without a flow run). Bounded; never raises.

    A flow run a worker runs (a child, or this one with `on_worker`) that is Running is set Cancelling, which
    has its worker stop the run's process and then mark it Cancelled (as `prefect flow-run cancel` does); one
    no worker has taken yet is set Cancelled."""
    if flow_run_id is None or "prefect" not in sys.modules:
        return None
    try:
        import uuid

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterId,
                                                    FlowRunFilterParentFlowRunId)
        from prefect.states import Cancelled, Cancelling

        run_id = uuid.UUID(str(flow_run_id))
        message = f"Interrupted ({reason}): cancelled by dbnd"
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(run_id)
            children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run_id])), limit=_READ_LIMIT)
            for child in children:
                if child.state is not None and not child.state.is_final():
                    # a run on a worker is stopped by its worker: Cancelling; one no worker took is Cancelled
                    state = Cancelling(message=message) if child.state.is_running() else Cancelled(message=message)
                    client.set_flow_run_state(child.id, state, force=True)
            for task_run in client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                                                  limit=_READ_LIMIT):
                if task_run.state is not None and not task_run.state.is_final():
                    client.set_task_run_state(task_run.id, Cancelled(message=message), force=True)
            # Crashed is what Prefect makes of the interrupt itself; only a run that completed first stays so
            if flow_run.state is None or not (flow_run.state.is_completed() or flow_run.state.is_cancelled()):
                running = on_worker and flow_run.state is not None and flow_run.state.is_running()
                client.set_flow_run_state(run_id, Cancelling(message=message) if running else Cancelled(message=message),
                                          force=True)
            return flow_run.name
    except Exception:  # noqa: BLE001 - the server may be gone; the process ends either way
        return str(flow_run_id)
