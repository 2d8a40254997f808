"""Task calls a run's profile sends elsewhere: its plugins' task senders (a Spark task sent to Databricks).

Resolved once per run, from the profile's explicit plugin tables only (a profile without a `[env.NAME.spark]`
table loads no plugin here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbnd_prefect import plugins

if TYPE_CHECKING:
    from dbnd_prefect.context import RunContext


def senders_of(run: "RunContext") -> list[plugins.TaskSender]:
    """The task senders of `run`'s profile (made once per run)."""
    found = run.task_senders
    if found is None:
        profile = run.profile
        found = [sender for table, settings in profile.plugin_settings.items()
                 if (sender := plugins.task_sender(table, profile.name, settings)) is not None]
        run.task_senders = found
    return found


def sender_for(task: Any, run: "RunContext") -> plugins.TaskSender | None:
    """The sender that runs calls of `task` in `run` elsewhere, or None (they run in the task run)."""
    return next((sender for sender in senders_of(run) if sender.takes(task)), None)


__all__ = ["senders_of", "sender_for"]
