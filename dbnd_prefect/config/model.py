"""The configuration model: values with provenance, stacked by layer, resolved by one rule."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping, NamedTuple

from dbnd_prefect.errors import ConfigError

# Lowest first. "call-site" is never stored: the decorators apply explicit call arguments
# between the "set" and "override" layers; it is listed so ranks and docs have one source.
LAYERS: tuple[str, ...] = ("default", "project", "conf-file", "env", "set", "call-site", "override")
STORED_LAYERS: tuple[str, ...] = tuple(layer for layer in LAYERS if layer != "call-site")
_RANK = {layer: rank for rank, layer in enumerate(LAYERS)}

# Sections that are not task sections (everything else is a task name, or "task" for all tasks).
RESERVED_SECTIONS = ("run", "formats", "tracking", "gc", "server")

_SECRET_KEY = re.compile(r"password|passwd|secret|token|credential|api_key|access_key", re.IGNORECASE)
_URI_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def layer_rank(layer: str) -> int:
    """Position of `layer` in the precedence order (higher wins)."""
    return _RANK[layer]


def display_value(key: str, value: Any) -> str:
    """`value` as shown to a user: secrets masked, URI credentials removed, long values cut."""
    if _SECRET_KEY.search(key):
        return "'***'"
    text = _URI_USERINFO.sub(r"\1***@", repr(value))
    return text if len(text) <= 120 else text[:117] + "..."


def render_value(value: Any) -> str:
    """`value` as it would be typed after `KEY=` (used in provenance strings), credentials removed."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = _URI_USERINFO.sub(r"\1***@", text)
    return text if len(text) <= 120 else text[:117] + "..."


def split_key(dotted: str) -> tuple[str, str]:
    """`"prepare_data.raw_data"` -> `("prepare_data", "raw_data")`.

    The key is the part after the last dot (`env.prod.data_root` -> section `env.prod`), except in
    `formats`, whose keys are dotted type names (`formats.pandas.DataFrame` -> key `pandas.DataFrame`).
    """
    if dotted.startswith("formats.") and len(dotted) > len("formats."):
        return "formats", dotted[len("formats.") :]
    section, dot, key = dotted.rpartition(".")
    if not dot or not section or not key:
        raise ConfigError(
            f"config key {dotted!r} does not name a setting",
            hint="use SECTION.KEY, e.g. prepare_data.raw_data or run.data_root",
        )
    return section, key


@dataclass(frozen=True)
class ConfigValue:
    """A resolved value and where it came from.

    `layer` is one of LAYERS; `source` says where in that layer: "dbnd.toml:12",
    "env DBND__PREPARE_DATA__RAW_DATA", "--set prepare_data.raw_data=...", "default".
    """

    value: Any
    layer: str
    source: str

    @property
    def rank(self) -> int:
        """Precedence of this value's layer (higher beats lower)."""
        return _RANK[self.layer]


class ConfigEntry(NamedTuple):
    """One value being added to a layer (what loaders produce)."""

    section: str
    key: str
    value: Any
    source: str


def entries_from_mapping(mapping: Mapping[str, Any], source: str) -> list[ConfigEntry]:
    """Entries from `{section: {key: value}}` and/or `{"section.key": value}`.

    A mapping value makes its key a section name; any other value needs a dotted key.
    """
    entries: list[ConfigEntry] = []
    for name, value in mapping.items():
        if isinstance(value, Mapping):
            for key, inner in value.items():
                entries.append(ConfigEntry(str(name), str(key), inner, source))
        else:
            section, key = split_key(str(name))
            entries.append(ConfigEntry(section, key, value, source))
    return entries


class DbndConfig:
    """An immutable stack of configuration layers; every value knows its layer and source.

    For each (section, key) the value from the highest layer wins; within one layer the value
    added last wins. Treat returned values as read-only.
    """

    __slots__ = ("_chains",)

    def __init__(self, chains: Mapping[tuple[str, str], tuple[ConfigValue, ...]] | None = None) -> None:
        object.__setattr__(self, "_chains", MappingProxyType(dict(chains or {})))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("DbndConfig is immutable; use with_layer() to get a changed copy")

    def __reduce__(self) -> tuple[Any, ...]:
        # a run's configuration travels with its task calls to other processes (Dask workers)
        return (DbndConfig, (dict(self._chains),))

    def __repr__(self) -> str:
        return f"DbndConfig({len(self._chains)} values in {len(self.sections())} sections)"

    # ----- reading -----------------------------------------------------------------------------

    def get(self, section: str, key: str, default: Any = None) -> Any:
        """The winning value of `section.key`, or `default` when no layer sets it."""
        found = self.get_value(section, key)
        return default if found is None else found.value

    def get_value(self, section: str, key: str) -> ConfigValue | None:
        """The winning value of `section.key` with its provenance, or None."""
        chain = self._chains.get((section, key))
        return chain[-1] if chain else None

    def section(self, name: str) -> dict[str, ConfigValue]:
        """The winning values of one section, by key."""
        return {key: chain[-1] for (section, key), chain in self._chains.items() if section == name}

    def sections(self) -> list[str]:
        """Names of all sections that hold at least one value, sorted."""
        return sorted({section for section, _ in self._chains})

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Plain `{section: {key: value}}` of the winning values."""
        result: dict[str, dict[str, Any]] = {}
        for (section, key), chain in self._chains.items():
            result.setdefault(section, {})[key] = chain[-1].value
        return result

    def overrides_for(self, section: str) -> dict[str, ConfigValue]:
        """Values of `section` set by the --override layer (they beat even call-site arguments)."""
        return {key: value for key, value in self.section(section).items() if value.layer == "override"}

    def explain(self, dotted_key: str) -> str:
        """Multi-line text: the value of `dotted_key`, the layer and source that set it, what it overrode."""
        section, key = split_key(dotted_key)
        chain = self._chains.get((section, key), ())
        name = f"{section}.{key}"
        if not chain:
            layers = ", ".join(STORED_LAYERS)
            return f"{name} is not set by any layer ({layers})"
        winner = chain[-1]
        lines = [
            f"{name} = {display_value(key, winner.value)}",
            f"  set by: {winner.layer} layer, {winner.source}",
        ]
        for lower in reversed(chain[:-1]):
            lines.append(f"  overrides: {lower.layer} layer, {lower.source} = {display_value(key, lower.value)}")
        if len(chain) == 1:
            lines.append("  overrides: nothing (no lower layer sets it)")
        if section not in RESERVED_SECTIONS and not section.startswith("env.") and winner.layer != "override":
            lines.append("  note: an explicit argument at the call site beats this value; only --override beats that")
        return "\n".join(lines)

    # ----- changing (returns a new config) ----------------------------------------------------

    def with_layer(self, layer_name: str, mapping: Mapping[str, Any], source: str) -> DbndConfig:
        """A new config with `mapping` added to layer `layer_name`, every value attributed to `source`.

        `mapping` is `{section: {key: value}}` and/or `{"section.key": value}`.
        """
        return self._with_entries(layer_name, entries_from_mapping(mapping, source))

    def _with_entries(self, layer: str, entries: Iterable[ConfigEntry]) -> DbndConfig:
        if layer == "call-site":
            raise ConfigError(
                "call-site arguments are not stored in configuration",
                hint="pass them to the task call; use the 'override' layer to beat them",
            )
        if layer not in _RANK:
            raise ConfigError(f"unknown configuration layer {layer!r}", hint=f"use one of {', '.join(STORED_LAYERS)}")
        chains = dict(self._chains)
        rank = _RANK[layer]
        for entry in entries:
            chain = chains.get((entry.section, entry.key), ())
            added = ConfigValue(entry.value, layer, entry.source)
            # Stable: a value lands after all values of lower or equal layers, before higher ones.
            position = sum(1 for existing in chain if _RANK[existing.layer] <= rank)
            chains[(entry.section, entry.key)] = chain[:position] + (added,) + chain[position:]
        return DbndConfig(chains)
