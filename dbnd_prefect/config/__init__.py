"""Layered configuration with provenance.

Configuration is `section -> key -> value`. Sections: `run` (the keys of `RunSettings`:
data_root, env, modules, task_version, task_target_date, verify, input_fingerprint, storage_block, api,
allow_foreign_pickle), `formats` (default output format per type name,
e.g. "pandas.DataFrame" -> "parquet"), `task` (defaults for all tasks), one section per task name
(`[prepare_data] raw_data = "data/raw.csv"`) and `env.NAME` environment profiles
(`[env.prod] data_root = "s3://bucket/root"`). Nested TOML tables become dotted section names.

Precedence, one rule: for each key the value from the highest layer wins; within a layer the
value given last wins. Layers, lowest first:

1. default    library defaults (`DEFAULTS`)
2. project    `[tool.dbnd]` in pyproject.toml, then dbnd.toml (top-level tables), from the
              first directory at or above the working directory holding either file;
              dbnd.toml beats pyproject.toml for the same key
3. conf-file  each `--conf-file PATH` (TOML like dbnd.toml), later beats earlier
4. env        `DBND__SECTION__KEY=value` variables (names lower-cased, values stay strings)
5. set        `--set TASK.PARAM=VALUE` (values stay strings; decorators coerce by type)
6. call-site  explicit arguments in the code calling a task: not stored here; the decorators
              let them beat layers 1-5
7. override   `--override TASK.PARAM=VALUE`, which beats even explicit call-site arguments
              (`DbndConfig.overrides_for(task_name)`)

Every value carries its provenance as a `ConfigValue(value, layer, source)`, where source is
"dbnd.toml:12", "env DBND__PREPARE_DATA__RAW_DATA", "--set prepare_data.raw_data=..." or
"default"; `DbndConfig.explain("prepare_data.raw_data")` shows the winner and what it overrode.

Typical use: the CLI calls `load_config(cwd, conf_files, set_values, override_values)` and runs
inside `config_context(config)`; tasks read `current_config()`.
"""

from dbnd_prefect.config.current import (
    config_context,
    config_in_effect,
    context_config,
    current_config,
    reset_config_cache,
    tracking_in_effect,
)
from dbnd_prefect.config.envs import active_env, env_section, known_envs
from dbnd_prefect.config.files import find_project_files
from dbnd_prefect.config.inputs import parse_set
from dbnd_prefect.config.loader import DEFAULTS, default_config, load_config
from dbnd_prefect.config.model import LAYERS, ConfigValue, DbndConfig, split_key
from dbnd_prefect.config.resolved import ResolvedConfig, active_profile, resolve_run_config, run_settings
from dbnd_prefect.config.settings import RunSettings, check_task_section, task_values

__all__ = [
    "DEFAULTS",
    "LAYERS",
    "ConfigValue",
    "DbndConfig",
    "ResolvedConfig",
    "RunSettings",
    "active_profile",
    "config_in_effect",
    "resolve_run_config",
    "tracking_in_effect",
    "active_env",
    "check_task_section",
    "config_context",
    "context_config",
    "current_config",
    "default_config",
    "env_section",
    "find_project_files",
    "known_envs",
    "load_config",
    "parse_set",
    "reset_config_cache",
    "run_settings",
    "split_key",
    "task_values",
]
