"""A configuration resolved once for a run: its run settings, its environment profile and its tracking settings.

Everything a run reads from configuration is resolved here, once, into a `ResolvedConfig` that the run's
context carries (context.py); rooms below read it there instead of resolving again. Resolving validates:
an unknown key, environment or value is a ConfigError naming its source.
"""

from __future__ import annotations

import dataclasses

from dbnd_prefect.config.envs import active_env
from dbnd_prefect.config.model import DbndConfig
from dbnd_prefect.config.profile_model import ResolvedProfile
from dbnd_prefect.config.profiles import resolve_profile
from dbnd_prefect.config.settings import RunSettings, settings_in_profile
from dbnd_prefect.config.tracking_settings import TrackingSettings, tracking_settings


@dataclasses.dataclass(frozen=True)
class ResolvedConfig:
    """A configuration and what a run reads of it, resolved and validated."""

    config: DbndConfig
    settings: RunSettings
    profile: ResolvedProfile
    tracking: TrackingSettings


def resolve_run_config(config: DbndConfig) -> ResolvedConfig:
    """Resolve `config` for a run: the active profile, the run settings it shapes, the tracking settings."""
    profile = resolve_profile(config, active_env(config))
    settings = settings_in_profile(config, profile.run_values(), profile.name)
    return ResolvedConfig(config, settings, profile, tracking_settings(config))


def run_settings(config: DbndConfig) -> RunSettings:
    """The validated `run` section with the active profile applied (for commands that run nothing)."""
    profile = resolve_profile(config, active_env(config))
    return settings_in_profile(config, profile.run_values(), profile.name)


def active_profile(config: DbndConfig) -> ResolvedProfile:
    """The profile selected by `run.env` (`local` by default)."""
    return resolve_profile(config, active_env(config))


__all__ = ["ResolvedConfig", "resolve_run_config", "run_settings", "active_profile"]
