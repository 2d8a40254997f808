"""The Spark task bench/spark_rows.py measures (a module of its own: its annotations name pyspark)."""

from pyspark.sql import DataFrame as SparkFrame

from dbnd_prefect import task
from spark_rows import aggregate


@task
def aggregate_sales(data: SparkFrame, rounds: int = 0) -> SparkFrame:
    return aggregate(data, rounds)
