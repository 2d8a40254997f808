"""Spark in dbnd tasks: the profile's Spark engine, Spark DataFrame targets, fingerprints and profiles.

A parameter annotated `pyspark.sql.DataFrame` receives a DataFrame read by Spark from its URI; a returned
Spark DataFrame is written by Spark as a folder. The engine (local Spark, Spark Connect, Databricks Connect)
is the environment profile's `[env.NAME.spark]` table. Importing this package imports no pyspark: the
modules that need it import it when a Spark value is read, written, fingerprinted or profiled.
"""

from __future__ import annotations

import warnings
from typing import Any

_quiet = False


def quiet_pyspark() -> None:
    """Silence pyspark's warning that pandas 3 is not fully supported (the formats here avoid what it warns of)."""
    global _quiet
    if not _quiet:
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        _quiet = True


def spark_session(config: Any = None) -> Any:
    """The SparkSession of the active environment profile's Spark engine (started once, then reused)."""
    from dbnd_prefect.spark.engine import spark_session as session

    return session(config)


__all__ = ["quiet_pyspark", "spark_session"]
