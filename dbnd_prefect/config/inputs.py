"""Configuration typed by people at run time: `--set`/`--override` text and DBND__ environment variables."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Mapping

from dbnd_prefect.config.model import ConfigEntry, entries_from_mapping, render_value, split_key
from dbnd_prefect.errors import ConfigError

ENV_PREFIX = "DBND__"
_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_SET_FORM = "expected --set TASK.PARAM=VALUE or a JSON object like '{\"task.param\": 1}'"


def parse_set(text: str) -> dict[str, str]:
    """Parse one `--set` argument into `{"task.param": "value"}`.

    Forms: `task.param=value` (split on the first `=`), or a JSON object `'{"task.param": 1}'` or
    `'{"task": {"param": 1}}'`
    (non-string JSON values become their JSON text, e.g. `1`, `true`, `[1, 2]`). A key without a
    dot is returned as-is; the CLI maps it to the root task. Values stay strings: the decorators
    coerce them by the parameter's type.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise ConfigError(f"invalid --set value {text!r}: not valid JSON ({error.msg})", hint=_SET_FORM) from None
        if not isinstance(data, dict):
            raise ConfigError(f"invalid --set value {text!r}: JSON must be an object", hint=_SET_FORM)
        result = {}
        for key, value in data.items():
            if isinstance(value, dict):  # the section form: {"task": {"param": value}}
                for inner, inner_value in value.items():
                    dotted = f"{key}.{inner}"
                    _check_key(dotted, text)
                    result[dotted] = inner_value if isinstance(inner_value, str) else json.dumps(inner_value)
                continue
            _check_key(key, text)
            result[key] = value if isinstance(value, str) else json.dumps(value)
        return result
    key, equals, value = text.partition("=")
    key = key.strip()
    if not equals:
        raise ConfigError(f"invalid --set value {text!r}: missing '='", hint=_SET_FORM)
    _check_key(key, text)
    return {key: value}


def _check_key(key: str, text: str) -> None:
    if not _KEY.fullmatch(key):
        raise ConfigError(f"invalid --set value {text!r}: bad key {key!r}", hint=_SET_FORM)


def set_entries(values: Iterable[str | Mapping[str, Any]], flag: str) -> list[ConfigEntry]:
    """Entries from `--set` (or `--override`, per `flag`) arguments: raw text or ready mappings.

    Each key must name its section (`task.param`); bare parameter names must be mapped to the
    root task by the caller first.
    """
    entries: list[ConfigEntry] = []
    for item in values:
        mapping = parse_set(item) if isinstance(item, str) else item
        for name, value in mapping.items():
            if "." not in name and not isinstance(value, Mapping):
                raise ConfigError(
                    f"{flag} key {name!r} names no task",
                    hint=f"use {flag} TASK.PARAM=VALUE, e.g. {flag} prepare_data.{name}=...",
                )
        for entry in entries_from_mapping(mapping, flag):
            source = f"{flag} {entry.section}.{entry.key}={render_value(entry.value)}"
            entries.append(entry._replace(source=source))
    return entries


def env_entries(environ: Mapping[str, str]) -> list[ConfigEntry]:
    """Entries from `DBND__SECTION__KEY=value` variables (names lower-cased, values kept as strings).

    `DBND__PREPARE_DATA__RAW_DATA` -> section "prepare_data", key "raw_data";
    `DBND__ENV__PROD__DATA_ROOT` -> section "env.prod", key "data_root".
    """
    entries: list[ConfigEntry] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"environment variable {name} does not name a setting",
                hint="use DBND__SECTION__KEY=value, e.g. DBND__PREPARE_DATA__RAW_DATA=data/raw.csv",
            )
        section, key = split_key(".".join(part.lower() for part in parts))
        entries.append(ConfigEntry(section, key, environ[name], f"env {name}"))
    return entries
