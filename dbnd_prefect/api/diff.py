"""`dbnd diff A B`: why two stored versions differ (their signatures' parts) and what differs in their data.

A and B are version selectors (`TASK.OUTPUT@latest`, `TASK.OUTPUT@run:ID`, `TASK.OUTPUT@SIGNATURE`,
`@SIGNATURE`) or URIs. DataFrames are compared by schema, rows and per-column statistics, and with `key`
row by row (see diff_frames.py); other values by a unified diff of their JSON or text; files by size and
checksum.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dbnd_prefect.api.diff_frames import ArrowFrame, compare_frames, stats_differ
from dbnd_prefect.api.pins import find_version, is_version_selector
from dbnd_prefect.errors import ParameterError

_FRAME_TYPES = ("pandas.DataFrame", "pandas.core.frame.DataFrame", "pyarrow.Table", "pyarrow.lib.Table")
_TEXT_FORMATS = ("json", "txt", "pickle")
MAX_DIFF_LINES = 200


@dataclasses.dataclass
class Side:
    """One side of a diff: what was asked for, the output's URI, its manifest (None for a plain URI)."""

    asked: str
    uri: str
    output: str | None = None
    manifest: dict[str, Any] | None = None

    @property
    def info(self) -> dict[str, Any]:
        return dict((self.manifest or {}).get("outputs", {}).get(self.output or "", {}))

    def as_json(self) -> dict[str, Any]:
        manifest = self.manifest or {}
        return {"asked": self.asked, "uri": self.uri, "task": manifest.get("task"), "output": self.output,
                "signature": manifest.get("signature"), "ended": manifest.get("ended")}


def resolve_side(asked: str, root: str, env: str) -> Side:
    """The output a selector or URI names, with its manifest when it is a stored version."""
    from dbnd_prefect.history.manifest import read_manifest
    from dbnd_prefect.targets import Target

    if is_version_selector(asked):
        manifest = find_version(asked, root, env)
        outputs = manifest.get("outputs", {})
        task_output = asked.split("@", 1)[0]
        output = task_output.split(".", 1)[1] if "." in task_output else None
        if output is None:
            if len(outputs) != 1:
                raise ParameterError(f"{asked}: version {str(manifest['signature'])[:16]} has outputs "
                                     f"{', '.join(sorted(outputs))}", hint=f"name one: {manifest.get('task')}.OUTPUT@...")
            output = next(iter(outputs))
        return Side(asked, str(outputs[output]["uri"]), output, manifest)
    target = Target(asked)
    if not target.exists():
        raise ParameterError(f"{asked}: no such file, and not a version selector",
                             hint="give a URI that exists, or TASK.OUTPUT@latest, TASK.OUTPUT@run:ID or @SIGNATURE")
    uri = asked if "://" in asked else str(Path(asked).resolve())
    manifest = read_manifest(uri.rstrip("/").rsplit("/", 1)[0] + "/_manifest.json")  # a stored output by its URI
    output = next((name for name, info in (manifest or {}).get("outputs", {}).items()
                   if str(info.get("uri", "")).rstrip("/") == uri.rstrip("/")), None)
    return Side(asked, uri, output, manifest if output else None)


def diff(a: str, b: str, *, key: Sequence[str] | str | None = None, root: str | None = None,
         env: str | None = None, config: Any = None, sample: int = 5) -> dict[str, Any]:
    """What differs between A and B, and why: one JSON-ready dict with `differ` (bool), `why`, `params`,
    `inputs`, `kind` and, for DataFrames, `schema`, `rows`, `columns` and (given `key`) `keyed`."""
    if root is None:
        from dbnd_prefect.api.run import build_config, data_root_of

        resolved = config if config is not None else build_config(Path.cwd(), env=env)
        root, env = data_root_of(resolved), resolved.settings.env
    keys = [k.strip() for k in key.split(",")] if isinstance(key, str) else list(key or [])
    if any(not k for k in keys):
        raise ParameterError(f"--key {key!r}: an empty column name", hint="use --key COL or --key COL1,COL2")
    side_a, side_b = resolve_side(a, root, env or "local"), resolve_side(b, root, env or "local")
    result: dict[str, Any] = {"a": side_a.as_json(), "b": side_b.as_json(), **why(side_a, side_b)}
    result.update(compare_data(side_a, side_b, keys, sample))
    return result


def why(a: Side, b: Side) -> dict[str, Any]:
    """The signature parts that differ: code, task version, environment, parameter values, inputs."""
    from dbnd_prefect.history.versions import explain_difference

    if a.manifest is None or b.manifest is None:
        return {"why": [], "params": {}, "inputs": {}, "code": None}
    parts_a, parts_b = a.manifest.get("signature_parts", {}), b.manifest.get("signature_parts", {})
    values_a, values_b = a.manifest.get("parameters", {}), b.manifest.get("parameters", {})
    inputs_a = {i.get("name"): i for i in a.manifest.get("inputs", [])}
    inputs_b = {i.get("name"): i for i in b.manifest.get("inputs", [])}
    params = {name: [values_a.get(name), values_b.get(name)] for name in sorted(set(values_a) | set(values_b))
              if name not in inputs_a and name not in inputs_b
              and (values_a.get(name) != values_b.get(name)
                   or parts_a.get("params", {}).get(name) != parts_b.get("params", {}).get(name))}
    inputs = {name: [_input_shown(inputs_a.get(name)), _input_shown(inputs_b.get(name))]
              for name in sorted(set(inputs_a) | set(inputs_b))
              if (inputs_a.get(name) or {}).get("fingerprint") != (inputs_b.get(name) or {}).get("fingerprint")}
    return {"why": explain_difference(parts_a, parts_b), "params": params, "inputs": inputs,
            "code": [parts_a.get("code"), parts_b.get("code")] if parts_a.get("code") != parts_b.get("code") else None}


def _input_shown(item: dict[str, Any] | None) -> str | None:
    if item is None:
        return None
    producer = item.get("producer_signature")
    where = str(item.get("uri") or item.get("fingerprint") or "")
    return f"{item.get('producer_task')}@{str(producer)[:16]} {where}" if producer else where


def _kind(side: Side) -> str:
    from dbnd_prefect.targets import format_for_uri

    info = side.info
    if info.get("type_key") in _FRAME_TYPES:
        return "frame"
    from dbnd_prefect.errors import DbndError

    try:
        fmt = format_for_uri(side.uri, info.get("format"))[0].name
    except DbndError:  # no known format: compared as a file
        return "file"
    if info.get("type_key") is None and fmt in ("parquet", "csv", "tsv", "feather", "orc", "jsonl"):
        return "frame"
    return "value" if fmt in _TEXT_FORMATS else "file"


def _arrow(side: Side) -> ArrowFrame:
    from dbnd_prefect.targets import Target, format_for_uri

    target = Target(side.uri, format=side.info.get("format"))
    if not target.is_folder() and format_for_uri(side.uri, side.info.get("format"))[0].name == "parquet":
        return ArrowFrame(source=target.fs.open(target.path, "rb"))
    return ArrowFrame.of(target.load("pandas.DataFrame"))


def compare_data(a: Side, b: Side, key: list[str], sample: int = 5) -> dict[str, Any]:
    """What differs in the stored data; `differ` says whether anything does."""
    kinds = {_kind(a), _kind(b)}
    same_bytes = bool(a.info.get("checksum")) and a.info.get("checksum") == b.info.get("checksum")
    if kinds == {"frame"}:
        found = compare_frames(_arrow(a), _arrow(b), key, sample)
        schema, keyed = found["schema"], found.get("keyed")
        found["kind"] = "frame"
        found["stats_differ"] = stats_differ(found["columns"])
        found["differ"] = bool(schema["added"] or schema["removed"] or schema["changed"]
                               or found["rows"]["a"] != found["rows"]["b"] or found["stats_differ"]
                               or (keyed and (keyed["added"] or keyed["removed"] or keyed["changed"]))
                               or (not key and not same_bytes and _checksum(a) != _checksum(b)))
        return found
    if key:
        raise ParameterError(f"--key {','.join(key)}: A and B are not both DataFrames",
                             hint="drop --key to compare other values")
    if kinds == {"value"}:
        lines = value_diff(_text_of(a), _text_of(b), a.asked, b.asked)
        return {"kind": "value", "differ": bool(lines), "diff": lines[:MAX_DIFF_LINES],
                "diff_truncated": len(lines) > MAX_DIFF_LINES}
    files = {"a": _file_facts(a), "b": _file_facts(b)}
    return {"kind": "file", "files": files, "differ": files["a"] != files["b"]}


def value_diff(text_a: str, text_b: str, name_a: str, name_b: str) -> list[str]:
    return [line.rstrip("\n") for line in difflib.unified_diff(
        text_a.splitlines(), text_b.splitlines(), fromfile=name_a, tofile=name_b, n=2, lineterm="")]


def _text_of(side: Side) -> str:
    from dbnd_prefect.targets import Target

    value = Target(side.uri, format=side.info.get("format")).load(side.info.get("type_key"))
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _checksum(side: Side) -> str:
    from dbnd_prefect.targets import Target

    return side.info.get("checksum") or Target(side.uri).checksum()


def _file_facts(side: Side) -> dict[str, Any]:
    from dbnd_prefect.targets import Target

    target = Target(side.uri)
    size = side.info.get("bytes")
    return {"bytes": size if size is not None else target.info().get("size"), "checksum": _checksum(side)}
