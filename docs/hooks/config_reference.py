"""mkdocs hook: configuration tables generated from the models that validate configuration.

Markers and what replaces them:

    <!-- run-keys -->        the `[run]` keys: `RunSettings` fields (dbnd_prefect/config/settings.py)
    <!-- tracking-keys -->   the `[tracking]` keys: `TrackingSettings` fields (config/tracking_settings.py)
    <!-- layers -->          the configuration layers, lowest first (`LAYERS`, config/model.py)
    <!-- profile-keys -->    every key an `[env.NAME]` table takes (`PROFILE_KEYS`, config/profile_model.py)
    <!-- task-runners -->    the task runner types and their keys (`RUNNER_MODELS`)
    <!-- spark-keys -->      the `[env.NAME.spark]` keys per engine (spark/settings.py)

Names, types and defaults come from the code (read in a subprocess with the interpreter that runs mkdocs);
only the one-line meanings below are written by hand. A key without a meaning, or a meaning for a key
that no longer exists, is a warning, which fails `mkdocs build --strict`.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("mkdocs.hooks.config_reference")

RUN_MEANINGS = {
    "data_root": "where outputs, manifests, run records and cache records go: a local path or a URI "
                 "(`s3://`, `gs://`, `az://`, `abfs://`, `hdfs://`, `memory://`, ...)",
    "storage_block": "a saved Prefect storage block used as the data root, by slug (`s3-bucket/my-data`)",
    "env": "the environment profile runs use (`--env NAME`)",
    "modules": "modules imported to find tasks by name (`-m MODULE` adds to it; as text: `\"pkg.a, pkg.b\"`)",
    "task_version": "the version of every task; `now` forces recomputation (`--task-version`)",
    "task_target_date": "the date the data is for (`YYYY-MM-DD`): part of every signature and output path "
                        "(`--task-target-date`)",
    "verify": "the check of a stored version before reuse: `fast` compares sizes and store versions and "
              "re-hashes only what changed, `full` always re-hashes",
    "input_fingerprint": "how input files count in a signature: `fast` by size and modification time (or the "
                         "store's ETag/version), `content` by a hash of their bytes",
    "api": "the Prefect API: unset (Prefect's own setting if one is configured, else `local`), `local`, "
           "`temporary` or an `http(s)://.../api` URL (see [Which Prefect API](#which-prefect-api))",
    "allow_foreign_pickle": "load pickle inputs from outside the data root (unpickling runs code from the file; "
                            "`Data(allow_pickle=True)` allows it for one parameter)",
    "serialize": "when several runs want the same signature at once, one computes and the others wait and reuse "
                 "it (a lock per signature in `{data_root}/.dbnd/locks`; local and `s3://` data roots)",
    "lock_expiry": "seconds a crashed holder's lock outlives it (a live holder renews its lock); the others "
                   "then take over",
    "lock_wait": "seconds a run waits for another run computing the same signature before its task fails",
}
TRACKING_MEANINGS = {
    "profile": "profile every task's data inputs and DataFrame outputs automatically",
    "histograms": "histograms in automatic profiles",
    "sample_rows": "above this many rows, distinct counts, quartiles, top values and histograms use a random "
                   "sample of this size (rows, nulls, mean, std, min and max use every row)",
    "preview_rows": "rows shown by `log_dataframe(..., with_preview=True)`",
    "top_values": "most frequent values listed per non-numeric column (and categorical histogram bars)",
    "histogram_bins": "bins of numeric histograms",
}
LAYER_MEANINGS = {
    "default": "library defaults",
    "project": "`[tool.dbnd]` in `pyproject.toml`, then `dbnd.toml` (top-level tables), from the first folder "
               "at or above the working directory that holds either; `dbnd.toml` wins for the same key",
    "conf-file": "each `--conf-file PATH` (TOML like `dbnd.toml`), later beats earlier",
    "env": "`DBND__SECTION__KEY=value` environment variables",
    "set": "`--set KEY=VALUE` (later beats earlier), `--env`, `--task-version`; deployment parameters "
           "`TASK.PARAM` of a deployed run",
    "call-site": "arguments the calling code passes explicitly (`train_model(data, alpha=0.1)`): not stored, "
                 "applied when a call is bound",
    "override": "`--override KEY=VALUE` (`run(..., override=...)`): beats even explicit call-site arguments",
}

_READ = r'''
import dataclasses, datetime as dt, json, types, typing
from pydantic_core import PydanticUndefined
from dbnd_prefect.config.settings import RunSettings
from dbnd_prefect.config.tracking_settings import TrackingSettings
from dbnd_prefect.config.model import LAYERS
from dbnd_prefect.config import profile_model as pm
from dbnd_prefect.spark import settings as spark

NAMES = {str: "text", int: "integer", float: "number", bool: "boolean", dt.date: "date", typing.Any: "any"}

def kind(tp, metadata=()):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return kind(args[0], args[1:])
    if origin is typing.Literal:
        return " or ".join(f'"{a}"' for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [kind(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" (optional)" if type(None) in args else "")
    if origin is list:
        return "list" if not args or args[0] is typing.Any else f"list of {kind(args[0])}"
    if origin is dict or tp is dict:
        return "table"
    positive = any(getattr(m, "gt", None) == 0 for m in metadata)
    name = NAMES.get(tp, getattr(tp, "__name__", str(tp)))
    return f"positive {name}" if positive else name

def shown(value):
    if value is PydanticUndefined:
        return "(required)"
    if value is None:
        return ""
    if isinstance(value, (bool, int, float, str, list, dict)):
        return json.dumps(value)
    if hasattr(value, "model_dump"):
        return json.dumps(value.model_dump(exclude_none=True))
    return str(value)

def model_rows(model, skip=()):
    rows = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        rows.append([name, kind(field.annotation, field.metadata), shown(field.default)])
    return rows

out = {
    "run": model_rows(RunSettings),
    "tracking": [[f.name, kind(f.type if not isinstance(f.type, str) else type(f.default)), shown(f.default)]
                 for f in dataclasses.fields(TrackingSettings)],
    "layers": list(LAYERS),
    "profile_keys": list(pm.PROFILE_KEYS),
    "worker_keys": list(pm.WORKER_KEYS),
    "profile_run_keys": list(pm.PROFILE_RUN_KEYS),
    "plugin_tables": list(pm.PLUGIN_TABLES),
    "builtin_profiles": pm.BUILTIN_PROFILES,
    "runners": {name: model_rows(model, skip=("type",)) for name, model in pm.RUNNER_MODELS.items()},
    "spark_engines": list(spark.ENGINES),
    "spark": {name: model_rows(model, skip=("engine",)) for name, model in spark._MODELS.items()},
}
print(json.dumps(out))
'''


_cache: dict | None = None


def on_pre_build(config) -> None:  # noqa: ANN001 - mkdocs hook signature
    global _cache
    _cache = None  # read the models again on every build (mkdocs serve)


def read_models() -> dict:
    global _cache
    if _cache is not None:
        return _cache
    done = subprocess.run([sys.executable, "-c", _READ], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PluginError(f"config_reference: reading the configuration models failed:\n{done.stderr.strip()}")
    _cache = json.loads(done.stdout)
    return _cache


def _code(text: str) -> str:
    return f"`{text}`" if text and text != "(required)" else text


def _meaning(meanings: dict[str, str], section: str, key: str) -> str:
    found = meanings.get(key)
    if found is None:
        log.warning(f"config_reference: {section}.{key} has no meaning in docs/hooks/config_reference.py")
        return "(not described yet)"
    return found


def _stale(meanings: dict[str, str], section: str, keys: list[str]) -> None:
    for key in sorted(set(meanings) - set(keys)):
        log.warning(f"config_reference: {section}.{key} is described in docs/hooks/config_reference.py "
                    "but no longer exists")


def run_keys(models: dict) -> str:
    keys = [row[0] for row in models["run"]]
    _stale(RUN_MEANINGS, "run", keys)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default in models["run"]:
        lines.append(f"| `run.{key}` | {kind} | {_code(default)} | {_meaning(RUN_MEANINGS, 'run', key)} |")
    return "\n".join(lines)


def tracking_keys(models: dict) -> str:
    keys = [row[0] for row in models["tracking"]]
    _stale(TRACKING_MEANINGS, "tracking", keys)
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default in models["tracking"]:
        lines.append(f"| `tracking.{key}` | {kind} | {_code(default)} | "
                     f"{_meaning(TRACKING_MEANINGS, 'tracking', key)} |")
    return "\n".join(lines)


def layers(models: dict) -> str:
    _stale(LAYER_MEANINGS, "layer", models["layers"])
    lines = ["| rank | layer | what it holds |", "|---:|---|---|"]
    for rank, layer in enumerate(models["layers"], 1):
        lines.append(f"| {rank} | `{layer}` | {_meaning(LAYER_MEANINGS, 'layer', layer)} |")
    return "\n".join(lines)


def profile_keys(models: dict) -> str:
    worker, run, tables = models["worker_keys"], models["profile_run_keys"], models["plugin_tables"]
    other = [k for k in models["profile_keys"] if k not in worker + run + tables]
    builtin = models["builtin_profiles"]
    lines = [
        f"- profile keys: {', '.join(_code(k) for k in other)}",
        f"- worker settings (turned into job variables): {', '.join(_code(k) for k in worker)}",
        f"- run settings (as in `[run]`, for runs in this profile): {', '.join(_code(k) for k in run)}",
        f"- engine plugin tables: {', '.join(_code(k) for k in tables)}",
        "- built-in profiles: " + "; ".join(f"`{name}` = `{json.dumps(value)}`" for name, value in builtin.items()),
    ]
    return "\n".join(lines)


def task_runners(models: dict) -> str:
    lines = ["| `type` | its keys |", "|---|---|"]
    for name, rows in models["runners"].items():
        keys = "; ".join(f"`{key}`: {kind}{', default ' + _code(default) if default else ''}"
                         for key, kind, default in rows)
        lines.append(f"| `{name}` | {keys or '—'} |")
    return "\n".join(lines)


def spark_keys(models: dict) -> str:
    engines = models["spark_engines"]
    tables = [models["spark"][engine] for engine in engines]
    common = [row for row in tables[0] if all(row in rows for rows in tables[1:])]
    lines = ["| engine | key | type | default |", "|---|---|---|---|", "| every engine | `engine` | "
             + " or ".join(f'"{e}"' for e in engines) + f" | `\"{engines[0]}\"` |"]
    lines += [f"| every engine | `{key}` | {kind} | {_code(default)} |" for key, kind, default in common]
    for engine, rows in zip(engines, tables):
        lines += [f"| `{engine}` | `{key}` | {kind} | {_code(default)} |"
                  for key, kind, default in rows if [key, kind, default] not in common]
    return "\n".join(lines)


GENERATORS = {
    "<!-- run-keys -->": run_keys,
    "<!-- tracking-keys -->": tracking_keys,
    "<!-- layers -->": layers,
    "<!-- profile-keys -->": profile_keys,
    "<!-- task-runners -->": task_runners,
    "<!-- spark-keys -->": spark_keys,
}


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - mkdocs hook signature
    markers = [marker for marker in GENERATORS if marker in markdown]
    if not markers:
        return markdown
    models = read_models()
    for marker in markers:
        markdown = markdown.replace(marker, GENERATORS[marker](models))
    return markdown
