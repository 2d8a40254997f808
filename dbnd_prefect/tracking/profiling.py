"""Data profiles: what a frame holds (schema, shape, size, nulls, distinct counts, stats, top values,
histograms, preview), computed by a per-engine profiler, and `log_dataframe`.

An engine plugs in with `register_profiler(matches, profile)`: `matches(value)` says whether the
profiler handles a value (checked by type name, so no engine is imported to ask), `profile(value,
options)` returns the profile dict. pandas is built in; a Spark profiler computing in Spark can be
registered the same way (it is: spark/profile.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

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
        from dbnd_prefect.tracking.settings import tracking_settings

        settings = tracking_settings()
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


def _is_spark(value: Any) -> bool:
    return any(cls.__module__.startswith("pyspark.sql") and cls.__name__ == "DataFrame" for cls in type(value).__mro__)


def _profile_spark(value: Any, options: ProfileOptions) -> dict[str, Any]:
    from dbnd_prefect.spark.profile import profile_spark

    return profile_spark(value, options)


register_profiler(_is_spark, _profile_spark)


def profiler_for(value: Any) -> Profiler | None:
    """The profiler for `value`, or None when no engine handles its type."""
    for matches, profile in _PROFILERS:
        try:
            if matches(value):
                return profile
        except Exception:
            continue
    return None


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


def log_dataframe(key: str, df: Any, with_schema: bool = True, with_stats: bool = True,
                  with_histograms: bool = False, with_preview: bool = False) -> dict[str, Any]:
    """Profile `df` and show it as the markdown artifact `profile-{key}`; returns the profile (empty if none).

    Above `tracking.sample_rows` rows, distinct counts, quartiles, top values and histograms are
    computed on a random sample (the profile says so); rows, nulls, mean, min and max use every row.
    """
    from dbnd_prefect.tracking.artifacts import artifact_key, publish_markdown
    from dbnd_prefect.tracking.render import profile_markdown
    from dbnd_prefect.tracking.task_run import current_tracking

    try:
        options = ProfileOptions.from_settings(with_schema=with_schema, with_stats=with_stats,
                                               with_histograms=with_histograms, with_preview=with_preview)
    except Exception as exc:
        warn(f"tracking: {exc}; profiling '{key}' with the default settings")
        options = ProfileOptions(with_schema=with_schema, with_stats=with_stats, with_histograms=with_histograms,
                                 with_preview=with_preview)
    if profiler_for(df) is None:
        warn(f"tracking: log_dataframe({key!r}) got a {type(df).__module__}.{type(df).__qualname__}, which no "
             "profiler handles (pandas DataFrame or Series, Spark DataFrame); nothing recorded")
        return {}
    profile = profile_data(df, options)
    if profile is None:
        return {}
    tracking = current_tracking()
    if tracking is not None:
        tracking.logged_profiles[str(key)] = profile
    publish_markdown(artifact_key("profile", str(key)), profile_markdown(str(key), profile),
                     description=f"data profile of **{key}**")
    return profile
