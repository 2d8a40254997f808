"""prefect-ray's task runner for a `ray` profile (imported only when a profile names one: it loads ray).

Registered in the plugin registry as the `ray` task runner (`ray_task_runner`).
"""

from __future__ import annotations

from typing import Any

from prefect_ray import RayTaskRunner  # type: ignore[import-not-found]


def ray_task_runner(spec: Any, profile: str) -> Any:
    """The runner of a `ray` profile: a Ray cluster at `address`, or a local one, with its `init_kwargs`."""
    return RayTaskRunner(address=spec.address or None, init_kwargs=dict(spec.init_kwargs))
