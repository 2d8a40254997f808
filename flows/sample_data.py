"""Small sample data sets the examples make for themselves (deterministic, generated locally)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
WINE_CSV = HERE / "data" / "wine.csv"

FEATURES = ["fixed_acidity", "volatile_acidity", "citric_acid", "residual_sugar", "chlorides",
            "free_sulfur_dioxide", "total_sulfur_dioxide", "density", "ph", "sulphates", "alcohol"]


def wine_quality_frame(rows: int = 1500, seed: int = 7):
    """A wine-quality-like table: eleven physico-chemical measures and a 3-9 quality score."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    means = np.array([8.3, 0.53, 0.27, 2.5, 0.087, 15.9, 46.5, 0.9967, 3.31, 0.66, 10.4])
    scales = np.array([1.7, 0.18, 0.19, 1.4, 0.047, 10.5, 32.9, 0.0019, 0.15, 0.17, 1.07])
    x = means + scales * rng.standard_normal((rows, len(FEATURES)))
    score = 5.6 + 0.35 * (x[:, 10] - 10.4) - 1.1 * (x[:, 1] - 0.53) + 0.9 * (x[:, 9] - 0.66)
    quality = np.clip(np.rint(score + 0.45 * rng.standard_normal(rows)), 3, 9).astype(int)
    frame = pd.DataFrame(x.round(4), columns=FEATURES)
    frame["quality"] = quality
    return frame


def ensure_wine_csv(path: Path = WINE_CSV) -> Path:
    """Write the sample wine table to `path` once; later calls reuse it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        wine_quality_frame().to_csv(tmp, index=False)
        tmp.replace(path)
    return path
