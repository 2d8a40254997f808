"""A realistic pipeline: prepare a wine-quality data set, train a model with `alpha`, validate it.

    python flows/wine_quality.py                      # the README demo
    dbnd run flows.wine_quality.predict_wine_quality --set train_model.alpha=0.3
"""

from __future__ import annotations

from typing import NamedTuple

from pandas import DataFrame

from dbnd_prefect import log_dataframe, log_metrics, pipeline, task


class Split(NamedTuple):
    training_set: DataFrame
    validation_set: DataFrame


@task
def fetch_data(raw_data: DataFrame) -> DataFrame:
    """Drop incomplete rows and normalise column names."""
    data = raw_data.dropna()
    data.columns = [c.strip().lower().replace(" ", "_") for c in data.columns]
    log_dataframe("wine data", data, with_histograms=True)  # a profile in the Prefect UI's Artifacts tab
    return data


@task
def split_data(data: DataFrame, validation_fraction: float = 0.25) -> Split:
    from sklearn.model_selection import train_test_split

    training, validation = train_test_split(data, test_size=validation_fraction, random_state=42)
    return Split(training, validation)


@task
def train_model(training_set: DataFrame, alpha: float = 0.5, l1_ratio: float = 0.5):
    """An ElasticNet regression of quality on the other columns (stored as a pickle)."""
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42)
    model.fit(training_set.drop(columns=["quality"]), training_set["quality"])
    return model


@task
def validate_model(model, validation_set: DataFrame) -> dict:
    """RMSE, MAE and R² of the model on held-out rows."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = model.predict(validation_set.drop(columns=["quality"]))
    actual = validation_set["quality"]
    metrics = {
        "rmse": float(mean_squared_error(actual, predicted) ** 0.5),
        "mae": float(mean_absolute_error(actual, predicted)),
        "r2": float(r2_score(actual, predicted)),
        "rows": int(len(actual)),
    }
    log_metrics(metrics)  # compared across runs in the Prefect UI (artifacts metric-rmse, ...)
    return metrics


@pipeline
def predict_wine_quality(raw_data: DataFrame):
    data = fetch_data(raw_data)
    training_set, validation_set = split_data(data)
    model = train_model(training_set)
    metrics = validate_model(model, validation_set)
    return model, metrics


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from flows.sample_data import ensure_wine_csv
    from dbnd_prefect.context import last_run_summary

    model, metrics = predict_wine_quality(str(ensure_wine_csv()))
    print(f"\nwine quality model: alpha={model.alpha}  rmse={metrics['rmse']:.3f}  r2={metrics['r2']:.3f}")
    print(last_run_summary())
