"""dbnd_prefect: DBND-style typed tasks and pipelines on Prefect 3.

The whole public API:

    from dbnd_prefect import task, pipeline, Data, Target, DbndError
    from dbnd_prefect import log_metric, log_dataframe    # tracking, shown as Prefect artifacts
"""

from dbnd_prefect.decorators import DbndPipeline, DbndTask, pipeline, task
from dbnd_prefect.errors import DbndError
from dbnd_prefect.params import Data
from dbnd_prefect.targets import Target
from dbnd_prefect.tracking import log_dataframe, log_metric

__all__ = ["task", "pipeline", "Data", "Target", "DbndError", "DbndTask", "DbndPipeline", "log_metric",
           "log_dataframe"]
__version__ = "0.1.0"
