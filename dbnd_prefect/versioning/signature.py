"""A task run's signature: the one place where it is computed.

signature = task identity + code fingerprint + significant parameter values + input data
fingerprints + task_version + environment. Upstream outputs count by their producer's signature,
so a change anywhere propagates downstream through the chain.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import xxhash

from dbnd_prefect.errors import DbndError

SIGNATURE_LENGTH = 16  # hex chars used in paths; the manifest keeps the full digest


@dataclasses.dataclass(frozen=True)
class Signature:
    """A signature and the parts it was made of (kept for manifests and `dbnd plan`)."""

    digest: str
    task: str
    code: str
    params: dict[str, str]
    task_version: str | None
    env: str

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
        }


def fingerprint_input(spec: Any, value: Any, full_content: bool = False) -> str:
    """Fingerprint one parameter value without loading data that is still on storage."""
    from dbnd_prefect.outputs import OutputRef, TaskOutputs
    from dbnd_prefect.targets import Target
    from dbnd_prefect.versioning.fingerprint import fingerprint_value

    if isinstance(value, OutputRef):
        source = value.source
        if isinstance(source, TaskOutputs):
            return f"output:{source.signature}:{value.name}"
        value = value.result()
    if isinstance(value, TaskOutputs):
        return f"output:{value.signature}"
    if spec is not None and spec.is_data and isinstance(value, (str, os.PathLike)):
        value = Target(value)
    if isinstance(value, Target):
        try:
            return f"target:{value.uri}:{value.fingerprint(full=full_content)}"
        except DbndError:  # missing or unreadable: the task run reports it, with its context
            return f"target:{value.uri}:unavailable"
    return "value:" + fingerprint_value(value)


def compute_signature(
    task_id: str,
    code: str,
    param_fingerprints: Mapping[str, str],
    task_version: str | None,
    env: str,
) -> Signature:
    """Combine the parts into a signature; the same parts always give the same digest."""
    payload = json.dumps(
        {"task": task_id, "code": code, "params": dict(sorted(param_fingerprints.items())),
         "task_version": task_version, "env": env},
        sort_keys=True,
    )
    return Signature(
        digest=xxhash.xxh3_128_hexdigest(payload.encode()),
        task=task_id,
        code=code,
        params=dict(param_fingerprints),
        task_version=task_version,
        env=env,
    )
