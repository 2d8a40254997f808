"""`log_dataframe`: a data profile of a frame, shown in the Prefect UI and kept with the task run's record."""

from __future__ import annotations

from typing import Any

from dbnd_prefect.tracking.notices import warn
from dbnd_prefect.tracking.profiling import ProfileOptions, profile_data, profiler_for
from dbnd_prefect.tracking.publish import artifact_key, publish_markdown
from dbnd_prefect.tracking.render import profile_markdown
from dbnd_prefect.tracking.task_run import current_tracking


def log_dataframe(key: str, df: Any, with_schema: bool = True, with_stats: bool = True,
                  with_histograms: bool = False, with_preview: bool = False) -> dict[str, Any]:
    """Profile `df` and show it as the markdown artifact `profile-{key}`; returns the profile (empty if none).

    Above `tracking.sample_rows` rows, distinct counts, quartiles, top values and histograms are
    computed on a random sample (the profile says so); rows, nulls, mean, min and max use every row.
    """
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


__all__ = ["log_dataframe"]
