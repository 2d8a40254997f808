"""dbnd_prefect: DBND-style typed tasks and pipelines on Prefect 3.

The whole public API:

    from dbnd_prefect import task, pipeline, Data, Target, DbndError
    from dbnd_prefect import run, config_context          # running with configuration (CLI issue)
"""

from dbnd_prefect.decorators import DbndPipeline, DbndTask, pipeline, task
from dbnd_prefect.errors import DbndError
from dbnd_prefect.params import Data
from dbnd_prefect.targets import Target

__all__ = ["task", "pipeline", "Data", "Target", "DbndError", "DbndTask", "DbndPipeline"]
__version__ = "0.1.0"
