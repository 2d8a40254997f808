"""A task run's signature from its parts: the one place where it is computed.

signature = task identity + code fingerprint + significant parameter values + input data
fingerprints + task_version + environment. Upstream outputs count by their producer's signature,
so a change anywhere propagates downstream through the chain.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import xxhash

from dbnd_prefect.layout import SIGNATURE_LENGTH


@dataclasses.dataclass(frozen=True)
class Signature:
    """A signature and the parts it was made of (kept for manifests and `dbnd plan`)."""

    digest: str
    task: str
    code: str
    params: dict[str, str]
    task_version: str | None
    env: str
    target_date: str | None = None  # ISO date of the data the run is for (`task_target_date`), if set

    @property
    def short(self) -> str:
        return self.digest[:SIGNATURE_LENGTH]

    def parts(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "code": self.code,
            "params": self.params,
            "task_version": self.task_version,
            "env": self.env,
            **({"target_date": self.target_date} if self.target_date is not None else {}),
        }



def compute_signature(
    task_id: str,
    code: str,
    param_fingerprints: Mapping[str, str],
    task_version: str | None,
    env: str,
    target_date: str | None = None,
) -> Signature:
    """Combine the parts into a signature; the same parts always give the same digest."""
    parts = {"task": task_id, "code": code, "params": dict(sorted(param_fingerprints.items())),
             "task_version": task_version, "env": env}
    if target_date is not None:  # absent unless set, so signatures made without one stay as they were
        parts["target_date"] = target_date
    payload = json.dumps(parts, sort_keys=True)
    return Signature(
        digest=xxhash.xxh3_128_hexdigest(payload.encode()),
        task=task_id,
        code=code,
        params=dict(param_fingerprints),
        task_version=task_version,
        env=env,
        target_date=target_date,
    )
