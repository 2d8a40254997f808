"""Text from configuration, the environment or the command line, parsed into a parameter's declared type."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
from typing import Any, Mapping

from dbnd_prefect.definitions.spec import ParamSpec
from dbnd_prefect.errors import ParameterError

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def coerce(task_name: str, spec: ParamSpec, value: Any) -> Any:
    """Parse a string (from config, env or the CLI) into the parameter's declared type.

    Non-string values, and data parameters given a path, are returned unchanged: data is
    loaded later, inside the task run.
    """
    if not isinstance(value, str):
        if spec.type_key == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    key = spec.type_key

    def fail(expected: str) -> ParameterError:
        return ParameterError(
            f"parameter '{task_name}.{spec.name}' expects {expected}, got {value!r}",
            hint=f"pass e.g. --set {task_name}.{spec.name}=<{expected}>",
        )

    try:
        if key == "bool":
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise fail("a boolean (true/false)")
        if key == "int":
            return int(value.strip())
        if key == "float":
            return float(value.strip())
        if key == "datetime.datetime":
            return dt.datetime.fromisoformat(value.strip())
        if key == "datetime.date":
            return dt.date.fromisoformat(value.strip())
        if key == "datetime.timedelta":
            return parse_timedelta(value)
        if key in ("dict", "list") and value.lstrip()[:1] in ("{", "["):
            parsed = json.loads(value)
            if not isinstance(parsed, dict if key == "dict" else list):
                raise fail(f"a JSON {key}")
            return parsed
        if key == "pathlib.Path" and not spec.is_data:
            return pathlib.Path(value)
    except ParameterError:
        raise
    except (ValueError, json.JSONDecodeError):
        names = {"int": "an integer", "float": "a number", "datetime.datetime": "an ISO datetime",
                 "datetime.date": "an ISO date (YYYY-MM-DD)",
                 "datetime.timedelta": "a duration (5d, 1h30m, 90s or ISO 8601 like P1DT2H)"}
        raise fail(names.get(key, f"a {key}")) from None
    return value


def parse_date(task_name: str, name: str, value: Any) -> dt.date:
    """A date given as a `date`, a `datetime` or ISO text (`2024-01-31`); ParameterError otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ParameterError(f"{task_name}: {name} expects an ISO date (YYYY-MM-DD), got {value!r}",
                             hint=f"e.g. {name}=2024-01-31") from None


def check_required(task_name: str, specs: list[ParamSpec], arguments: Mapping[str, Any]) -> None:
    """ParameterError naming the required parameters that have no value."""
    missing = [s.name for s in specs if s.required and s.name not in arguments]
    if missing:
        raise ParameterError(
            f"task '{task_name}' is missing required parameter(s) {missing}",
            hint=f"pass them in the call or with --set {task_name}.{missing[0]}=VALUE",
        )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|us|w|d|h|m|s)", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE)
_UNIT = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds", "ms": "milliseconds",
         "us": "microseconds"}


def parse_timedelta(text: str) -> dt.timedelta:
    """`5d`, `1h30m`, `2w 3d`, `90s`, `250ms` or ISO 8601 (`P1DT2H`, `PT30M`) as a timedelta; ValueError otherwise."""
    compact = text.strip().replace(" ", "")
    iso = _ISO_DURATION.fullmatch(compact)
    if iso and compact.upper() not in ("P", "PT") and any(iso.groupdict().values()):
        return dt.timedelta(**{_UNIT[k]: float(v) for k, v in iso.groupdict().items() if v})
    parts = _DURATION_PART.findall(compact)
    if compact and parts and "".join(n + u for n, u in parts) == compact:
        total = dt.timedelta()
        for number, unit in parts:
            total += dt.timedelta(**{_UNIT[unit.lower()]: float(number)})
        return total
    raise ValueError(f"not a duration: {text!r}")

