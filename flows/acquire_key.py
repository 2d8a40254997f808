"""The reference documentation's second example: a pipeline wiring `acquire_key` into `prepare_data`.

    python flows/acquire_key.py
    dbnd run flows.acquire_key.prepare_data_pipeline --set prepare_data_pipeline.raw_data=flows/data/wine.csv
"""

from pandas import DataFrame, Series

from dbnd_prefect import pipeline, task


@task
def acquire_key(raw_data: DataFrame) -> str:
    """The column to extract: the last one, by convention the label."""
    return str(raw_data.columns[-1])


@task(name="prepare_key_data")
def prepare_data(data: DataFrame, key: str) -> Series:
    result = data.get(key)
    return result


@pipeline
def prepare_data_pipeline(raw_data: DataFrame):
    key = acquire_key(raw_data)
    treated_data = prepare_data(raw_data, key)

    return treated_data


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from flows.sample_data import ensure_wine_csv

    column = prepare_data_pipeline(str(ensure_wine_csv()))
    print(f"prepare_data_pipeline: column '{column.name}' with {len(column)} values, mean {column.mean():.3f}")
