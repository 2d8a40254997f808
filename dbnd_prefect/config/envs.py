"""Environment profile names: the built-in ones, those configured as `[env.NAME]` tables, the active one."""

from __future__ import annotations

from dbnd_prefect.config.model import ConfigValue, DbndConfig
from dbnd_prefect.errors import ConfigError, suggest

BUILTIN_ENV = "local"
BUILTIN_ENVS = ("local", "docker", "k8s")  # built-in environment profiles (see config/profiles.py)


def known_envs(config: DbndConfig) -> list[str]:
    """Environment profile names: the built-in `local`, `docker`, `k8s` plus every `[env.NAME]` table."""
    names = {section[len("env.") :].partition(".")[0] for section in config.sections() if section.startswith("env.")}
    return sorted({*BUILTIN_ENVS, *names})


def unknown_env(name: str, known: list[str], where: str = "") -> ConfigError:
    return ConfigError(
        f"unknown environment {name!r}{where}{suggest(name, known)}",
        hint=f"known profiles: {', '.join(known)}; define others as [env.NAME] tables",
    )


def active_env(config: DbndConfig) -> str:
    """The environment profile selected by `run.env` (default `local`); unknown -> ConfigError."""
    chosen = config.get_value("run", "env")
    name = BUILTIN_ENV if chosen is None else str(chosen.value)
    known = known_envs(config)
    if name not in known:
        raise unknown_env(name, known, f" (from {chosen.source})" if chosen else "")
    return name


def env_section(config: DbndConfig, name: str) -> dict[str, ConfigValue]:
    """Values of environment profile `name`'s own `[env.NAME]` table (config/profiles.py resolves a
    profile with its parents and built-in values)."""
    known = known_envs(config)
    if name not in known:
        raise unknown_env(name, known)
    return config.section(f"env.{name}")
