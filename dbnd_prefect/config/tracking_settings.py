"""The `[tracking]` configuration section: what is profiled automatically and how much of it."""

from __future__ import annotations

import dataclasses
from typing import Any

from dbnd_prefect.errors import ConfigError, suggest


@dataclasses.dataclass(frozen=True)
class TrackingSettings:
    """Validated `tracking.*` keys (defaults below)."""

    profile: bool = True  # profile every task's data inputs and DataFrame outputs
    histograms: bool = False  # histograms in automatic profiles
    sample_rows: int = 50_000  # above this many rows, distinct counts, quartiles, top values, histograms use a sample
    preview_rows: int = 10  # rows shown by with_preview=True
    top_values: int = 5  # most frequent values listed per non-numeric column (and categorical histogram bars)
    histogram_bins: int = 20


TRACKING_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrackingSettings))
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


def tracking_settings(config: Any) -> TrackingSettings:
    """The `[tracking]` section of `config`; bad keys -> ConfigError."""
    values: dict[str, Any] = {}
    for key, found in config.section("tracking").items():
        if key not in TRACKING_KEYS:
            raise ConfigError(f"unknown key tracking.{key} at {found.source}{suggest(key, TRACKING_KEYS)}",
                              hint=f"tracking keys: {', '.join(TRACKING_KEYS)}")
        values[key] = _typed(key, found.value, found.source)
    return TrackingSettings(**values)


def _typed(key: str, value: Any, source: str) -> Any:
    default = getattr(TrackingSettings, key)
    if isinstance(default, bool):
        text = str(value).strip().lower()
        if isinstance(value, bool):
            return value
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ConfigError(f"invalid tracking.{key} = {value!r} at {source}: expected true or false",
                          hint=f"set tracking.{key}=true or false")
    try:
        number = int(value)
        if isinstance(value, bool) or number < 1 or (isinstance(value, float) and value != number):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"invalid tracking.{key} = {value!r} at {source}: expected a positive integer",
                          hint=f"set e.g. tracking.{key}={default}") from None
    return number
