"""Building a DbndConfig from all its layers: defaults, project files, conf files, env, --set, --override."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from dbnd_prefect.config.files import find_project_files, read_toml_entries
from dbnd_prefect.config.inputs import env_entries, set_entries
from dbnd_prefect.config.model import DbndConfig, entries_from_mapping
from dbnd_prefect.config.resolved import run_settings

# Library defaults (layer "default"). Format keys are the type names the format registry uses.
DEFAULTS: dict[str, dict[str, Any]] = {
    "run": {
        "data_root": "data",
        "env": "local",
        "modules": [],
        "verify": "fast",
    },
    "formats": {},  # defaults per type live in targets.formats.default_format_for
}


def default_config() -> DbndConfig:
    """A config holding only the library defaults."""
    return DbndConfig()._with_entries("default", entries_from_mapping(DEFAULTS, "default"))


def load_config(
    cwd: str | os.PathLike[str] | None = None,
    conf_files: Iterable[str | os.PathLike[str]] = (),
    set_values: Iterable[str | Mapping[str, Any]] = (),
    override_values: Iterable[str | Mapping[str, Any]] = (),
    environ: Mapping[str, str] | None = None,
) -> DbndConfig:
    """Load and validate the configuration seen from `cwd` (default: the working directory).

    `conf_files` are `--conf-file` paths (relative to `cwd`; later beats earlier). `set_values`
    and `override_values` are raw `--set`/`--override` arguments or mappings such as
    `{"prepare_data.raw_data": "s3://..."}`. `environ` defaults to `os.environ`.
    Raises ConfigError for malformed files, unknown `run` keys or an unknown environment.
    """
    config = with_command_line(read_layers(cwd, conf_files, environ), set_values, override_values)
    run_settings(config)
    return config


def read_layers(
    cwd: str | os.PathLike[str] | None = None,
    conf_files: Iterable[str | os.PathLike[str]] = (),
    environ: Mapping[str, str] | None = None,
    over: DbndConfig | None = None,
) -> DbndConfig:
    """The defaults, project files, `conf_files` and DBND__ variables seen from `cwd` (not validated).

    `over` is a config that already holds the project files and variables (a `config_context`'s):
    only `conf_files` are added to it.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    base = base.resolve()
    config = default_config() if over is None else over
    if over is None:
        for path in find_project_files(base):
            entries = read_toml_entries(path, base, pyproject=path.name == "pyproject.toml")
            config = config._with_entries("project", entries)
    for conf_file in conf_files:
        path = Path(conf_file)
        path = path if path.is_absolute() else base / path
        config = config._with_entries("conf-file", read_toml_entries(path, base))
    if over is not None:
        return config
    return config._with_entries("env", env_entries(os.environ if environ is None else environ))


def with_command_line(
    config: DbndConfig,
    set_values: Iterable[str | Mapping[str, Any]] = (),
    override_values: Iterable[str | Mapping[str, Any]] = (),
) -> DbndConfig:
    """`config` with `--set` and `--override` values added, in the order given (not validated)."""
    config = config._with_entries("set", set_entries(set_values, "--set"))
    return config._with_entries("override", set_entries(override_values, "--override"))

