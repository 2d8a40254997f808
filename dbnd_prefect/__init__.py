"""dbnd_prefect: DBND-style typed tasks and pipelines on Prefect 3.

The whole public API:

    from dbnd_prefect import task, pipeline, Data, Target, DbndError
    from dbnd_prefect import run, config_context          # running with configuration
    from dbnd_prefect import plan, reproduce              # what a run would reuse; re-run a recorded run
    from dbnd_prefect import Format, register_format      # file formats for typed targets
    from dbnd_prefect import log_metric, log_metrics, log_dataframe, log_artifact  # tracking, shown in the Prefect UI
    from dbnd_prefect import Schema                       # data contracts: Annotated[DataFrame, Schema(Model)]

Names are imported on first use, so importing a submodule (the pytest plugin, the CLI's error
path) does not import Prefect, which reads its settings when imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbnd_prefect.api.run import run  # noqa: F401
    from dbnd_prefect.config import config_context  # noqa: F401
    from dbnd_prefect.decorators import DbndPipeline, DbndTask, pipeline, task  # noqa: F401
    from dbnd_prefect.errors import DbndError  # noqa: F401
    from dbnd_prefect.definitions.spec import Data, Output  # noqa: F401
    from dbnd_prefect.api.plan import plan  # noqa: F401
    from dbnd_prefect.api.reproduce import reproduce  # noqa: F401
    from dbnd_prefect.targets import Format, Target, register_format  # noqa: F401
    from dbnd_prefect.tracking import Schema, log_artifact, log_dataframe, log_metric, log_metrics  # noqa: F401

_EXPORTS = {
    "task": "dbnd_prefect.decorators",
    "pipeline": "dbnd_prefect.decorators",
    "DbndTask": "dbnd_prefect.decorators",
    "DbndPipeline": "dbnd_prefect.decorators",
    "DbndError": "dbnd_prefect.errors",
    "Data": "dbnd_prefect.definitions.spec",
    "Output": "dbnd_prefect.definitions.spec",
    "Target": "dbnd_prefect.targets",
    "run": "dbnd_prefect.api.run",
    "config_context": "dbnd_prefect.config",
    "log_metric": "dbnd_prefect.tracking",
    "log_dataframe": "dbnd_prefect.tracking",
    "log_metrics": "dbnd_prefect.tracking",
    "log_artifact": "dbnd_prefect.tracking",
    "Schema": "dbnd_prefect.tracking",
    "plan": "dbnd_prefect.api.plan",
    "reproduce": "dbnd_prefect.api.reproduce",
    "Format": "dbnd_prefect.targets",
    "register_format": "dbnd_prefect.targets",
}
__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dbnd_prefect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
