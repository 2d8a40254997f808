"""TOML configuration files: finding the project's files, reading them into entries with file:line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Iterator

from dbnd_prefect.config.model import ConfigEntry
from dbnd_prefect.errors import ConfigError

PROJECT_FILES = ("pyproject.toml", "dbnd.toml")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"at line (\d+), column (\d+)")


def find_project_files(cwd: Path) -> list[Path]:
    """The project's configuration files, lowest precedence first.

    Walks up from `cwd` and stops at the first directory holding pyproject.toml or dbnd.toml;
    returns those present there, pyproject.toml first (dbnd.toml wins for the same key).
    """
    for directory in (cwd, *cwd.parents):
        found = [directory / name for name in PROJECT_FILES if (directory / name).is_file()]
        if found:
            return found
    return []


# TOML files Prefect's settings read from the working directory when Prefect is imported
PREFECT_READS = ("pyproject.toml", "prefect.toml")


def check_syntax(cwd: Path, names: tuple[str, ...] = PREFECT_READS) -> None:
    """ConfigError naming the file, line and column when one of `names` in `cwd` is not valid TOML.

    Prefect parses pyproject.toml and prefect.toml of the working directory when it is imported, and fails
    with a traceback of its own on a syntax error: `dbnd` checks them first.
    """
    for name in names:
        path = cwd / name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # absent or unreadable: the configuration loader says so when it reads it
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise _syntax_error(error, text, display_path(path, cwd)) from None


def display_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it, else absolute."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def read_toml_entries(path: Path, cwd: Path, *, pyproject: bool = False) -> list[ConfigEntry]:
    """Entries of one TOML file, each with source "FILE:LINE".

    For pyproject.toml only the `[tool.dbnd]` table is read (nothing when it is absent).
    """
    shown = display_path(path, cwd)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {shown}", hint="check the --conf-file path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read configuration file {shown}: {error}", hint="save it as UTF-8 TOML") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise _syntax_error(error, text, shown) from None

    prefix: tuple[str, ...] = ()
    if pyproject:
        prefix = ("tool", "dbnd")
        data = data.get("tool", {}).get("dbnd", {})
        if not isinstance(data, dict):
            raise ConfigError(f"{shown}: tool.dbnd must be a table", hint="write [tool.dbnd.SECTION] tables")
    lines = _key_lines(text)
    entries: list[ConfigEntry] = []
    for path_parts, section, key, value in _flatten(data, prefix):
        line = _line_of(lines, path_parts, len(prefix))
        source = f"{shown}:{line}" if line else shown
        if section is None:
            table = "[tool.dbnd.SECTION]" if pyproject else "[SECTION]"
            raise ConfigError(
                f"{source}: key {key!r} is outside any section",
                hint=f"put it under a {table} table, e.g. [run] or the task's name",
            )
        entries.append(ConfigEntry(section, key, value, source))
    return entries


def _syntax_error(error: tomllib.TOMLDecodeError, text: str, shown: str) -> ConfigError:
    """`FILE:LINE: invalid TOML: PROBLEM (at line L, column C) (fix ...)`: the file, line and column.

    tomllib gives the position in its message only ("(at line 3, column 7)", or "(at end of document)") before
    Python 3.14, which adds `lineno`/`colno`.
    """
    message = " ".join(str(error).split())
    line, column = getattr(error, "lineno", None), getattr(error, "colno", None)
    match = _TOML_POSITION.search(message)
    if match:
        line, column = int(match.group(1)), int(match.group(2))
    elif "(at end of document)" in message:  # an unclosed table, string or array: the file's last line
        line = len(text.splitlines()) or 1
        column = len(text.splitlines()[-1]) + 1 if text.splitlines() else 1
        message = message.replace("(at end of document)", f"(at end of document, line {line}, column {column})")
    if line is not None and f"line {line}" not in message:
        message = f"{message} (at line {line}, column {column})"
    where = f"{shown}:{line}" if line is not None else shown
    return ConfigError(f"{where}: invalid TOML: {message}", hint="fix the syntax at that line",
                       source=f"{shown}:{line}:{column}" if line is not None else shown)


_Flat = tuple[tuple[str, ...], str | None, str, Any]  # (toml path, section, key, value)


def _flatten(data: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[_Flat]:
    """Yield (toml path, section, key, value); nested tables become dotted section names.

    In `formats` nested tables join into the key instead, since its keys are dotted type names
    (`pandas.DataFrame = "csv"` written unquoted). Top-level non-table values yield section None.
    """

    def walk(table: dict[str, Any], path: tuple[str, ...], section: str | None, key_prefix: str) -> Iterator[_Flat]:
        for name, value in table.items():
            here = path + (name,)
            if isinstance(value, dict):
                if section == "formats":
                    yield from walk(value, here, section, f"{key_prefix}{name}.")
                else:
                    yield from walk(value, here, f"{section}.{name}" if section else name, "")
            else:
                yield here, section, f"{key_prefix}{name}", value

    yield from walk(data, prefix, None, "")


def _line_of(lines: dict[tuple[str, ...], int], path: tuple[str, ...], floor: int) -> int | None:
    # Keys inside inline tables or arrays have no line of their own: fall back to the enclosing key.
    for end in range(len(path), floor, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path (and table header) in TOML text to its 1-based line number.

    tomllib reports no positions; this scans headers and `key =` lines, skipping multi-line strings.
    """
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_string:
            if in_string in raw:
                in_string = None
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            double = stripped.startswith("[[")
            parsed = _parse_key(stripped, 2 if double else 1)
            if parsed:
                table = tuple(parsed[0])
                lines.setdefault(table, number)
            continue
        parsed = _parse_key(stripped, 0)
        if not parsed or parsed[1] >= len(stripped) or stripped[parsed[1]] != "=":
            continue
        lines.setdefault(table + tuple(parsed[0]), number)
        rest = stripped[parsed[1] + 1 :]
        for quote in ('"""', "'''"):
            if rest.count(quote) % 2 == 1:
                in_string = quote
                break
    return lines


def _parse_key(text: str, start: int) -> tuple[list[str], int] | None:
    """Parse a (dotted, possibly quoted) TOML key at `start`; return its parts and the next index."""
    parts: list[str] = []
    index = start
    while True:
        index = _skip_blanks(text, index)
        if index >= len(text):
            return None
        char = text[index]
        if char in "\"'":
            end = index + 1
            while end < len(text) and text[end] != char:
                end += 2 if char == '"' and text[end] == "\\" else 1
            if end >= len(text):
                return None
            part = text[index + 1 : end]
            parts.append(_unescape(part) if char == '"' else part)
            index = end + 1
        else:
            match = _BARE_KEY.match(text, index)
            if not match:
                return None
            parts.append(match.group())
            index = match.end()
        index = _skip_blanks(text, index)
        if index < len(text) and text[index] == ".":
            index += 1
            continue
        return parts, index


def _skip_blanks(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t":
        index += 1
    return index


def _unescape(part: str) -> str:
    if "\\" not in part:
        return part
    try:
        return tomllib.loads(f'k = "{part}"')["k"]
    except tomllib.TOMLDecodeError:
        return part
