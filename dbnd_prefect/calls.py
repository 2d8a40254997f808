"""A task call resolved once: the task, its arguments, their signature and its cache key.

A call is bound where it is made (a pipeline body, a task body, a top-level call): arguments are taken
from the call site and the configuration and coerced, and the signature is computed from them — an
upstream output counts by its producer's signature, which is known as soon as the producer is
submitted. The `BoundCall` then travels to Prefect as the task run's one parameter: the cache policy
reads its key, Prefect resolves the upstream futures inside it, and the task body loads and writes
with it. Nothing is bound, fingerprinted or signed twice. A call pickles (for task runners that run
tasks in other processes, such as Dask): its task by reference, its run's settings with it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from dbnd_prefect.fingerprint.signature import Signature
    from dbnd_prefect.run_context import RunContext


@dataclasses.dataclass(frozen=True, eq=False)
class BoundCall:
    """One call of a dbnd task, resolved: what the task run receives from Prefect."""

    task: Any  # the DbndTask
    arguments: dict[str, Any]
    signature: "Signature"
    record_key: str  # the Prefect cache key: the signature's record in the run's storage
    run: "RunContext | None" = None  # the run it belongs to, for a task body in another process

    @property
    def digest(self) -> str:
        return self.signature.digest

    def __repr__(self) -> str:
        return f"<call of {getattr(self.task, 'name', self.task)} {self.signature.short}>"


def bind_call(task: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], run: "RunContext") -> BoundCall:
    """Resolve a call of `task` in `run`: arguments by the precedence rule, then its signature."""
    return call_with(task, task.bind(args, kwargs, run), run)


def call_with(task: Any, arguments: dict[str, Any], run: "RunContext") -> BoundCall:
    """The call of `task` with `arguments` already bound (by the precedence rule) in `run`."""
    signature = task.signature_for(arguments, run)
    return BoundCall(task, arguments, signature, run.storage.record_key(signature.digest), run)
