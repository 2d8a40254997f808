"""Data profiles: what a frame holds (schema, shape, size, nulls, distinct counts, stats, top values,
histograms, preview), computed by a per-engine profiler, and `log_dataframe`.

pandas is built in; a plugin's frame type (Spark) brings its own profiler through the plugin registry
(plugins.py), imported when a value of that type is profiled. `register_profiler(matches, profile)` adds
another: `matches(value)` says whether it handles a value (checked by type name, so no engine is imported to
ask), `profile(value, options)` returns the profile dict.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dbnd_prefect import plugins
from dbnd_prefect.config.current import tracking_in_effect
from dbnd_prefect.tracking.notices import warn

Profiler = Callable[[Any, "ProfileOptions"], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class ProfileOptions:
    """What a profile holds, and how much data it looks at."""

    with_schema: bool = True
    with_stats: bool = True
    with_histograms: bool = False
    with_preview: bool = False
    sample_rows: int = 50_000
    preview_rows: int = 10
    top_values: int = 5
    histogram_bins: int = 20
    automatic: bool = False  # an automatic profile (tracking.profile), not asked for by name: engines where
    # profiling costs a job of its own (Spark) may record less

    @classmethod
    def from_settings(cls, **overrides: Any) -> "ProfileOptions":
        """Options from the `[tracking]` configuration, with `overrides`."""
        settings = tracking_in_effect()
        base = cls(with_histograms=settings.histograms, sample_rows=settings.sample_rows,
                   preview_rows=settings.preview_rows, top_values=settings.top_values,
                   histogram_bins=settings.histogram_bins)
        return dataclasses.replace(base, **overrides)


_PROFILERS: list[tuple[Callable[[Any], bool], Profiler]] = []


def register_profiler(matches: Callable[[Any], bool], profile: Profiler) -> None:
    """Profile values for which `matches(value)` is true with `profile(value, options)`; later ones win."""
    _PROFILERS.insert(0, (matches, profile))


def _is_pandas(value: Any) -> bool:
    return any(cls.__module__.split(".")[0] == "pandas" and cls.__name__ in ("DataFrame", "Series")
               for cls in type(value).__mro__)


def _profile_pandas(value: Any, options: ProfileOptions) -> dict[str, Any]:
    from dbnd_prefect.tracking.pandas_profile import profile_pandas

    return profile_pandas(value, options)


register_profiler(_is_pandas, _profile_pandas)


def profiler_for(value: Any) -> Profiler | None:
    """The profiler for `value`, or None when no engine handles its type."""
    for matches, profile in _PROFILERS:
        try:
            if matches(value):
                return profile
        except Exception:
            continue
    frame_type = plugins.frame_type_of(value)
    return plugins.frame_profiler(frame_type.key) if frame_type is not None else None


def profile_data(value: Any, options: ProfileOptions) -> dict[str, Any] | None:
    """The profile of `value`, None when no profiler handles it; a failing profiler is a warning, not an error."""
    profile = profiler_for(value)
    if profile is None:
        return None
    try:
        return profile(value, options)
    except Exception as exc:
        warn(f"tracking: could not profile a {type(value).__name__}: {type(exc).__name__}: {exc}")
        return None


__all__ = ["ProfileOptions", "Profiler", "register_profiler", "profiler_for", "profile_data"]
