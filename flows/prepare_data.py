"""The reference documentation's first example: a task that splits a DataFrame in two.

    python flows/prepare_data.py
    dbnd run flows.prepare_data.prepare_data --set prepare_data.raw_data=flows/data/wine.csv
"""

from typing import Tuple

from pandas import DataFrame
from sklearn.model_selection import train_test_split

from dbnd_prefect import log_metric, task


@task
def prepare_data(raw_data: DataFrame) -> Tuple[DataFrame, DataFrame]:
    train_df, validation_df = train_test_split(raw_data, random_state=0)
    log_metric("training rows", len(train_df))

    return train_df, validation_df


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from flows.sample_data import ensure_wine_csv

    train, validation = prepare_data(str(ensure_wine_csv()))
    print(f"prepare_data: {len(train)} training rows, {len(validation)} validation rows")
