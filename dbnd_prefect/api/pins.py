"""Pins and version selectors: `dbnd pin SELECTOR` keeps a stored version (and what it read) from `dbnd gc`.

A pin is a small JSON file, `{root}/.dbnd/pins/{signature}.json`. A selector names one stored version:
`TASK.OUTPUT@latest`, `TASK.OUTPUT@run:FLOW_RUN_ID`, `TASK[.OUTPUT]@SIGNATURE` or `@SIGNATURE` (4 or more hex
digits of the signature, as `dbnd versions` shows them).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from dbnd_prefect import layout
from dbnd_prefect.errors import ParameterError

PINS_DIR = "pins"
_SELECTOR = re.compile(r"^(?:(?P<task>[A-Za-z_][\w-]*)(?:\.(?P<output>\w+))?)?"
                       r"@(?P<sel>latest|run:[0-9a-fA-F-]+|[0-9a-fA-F]{4,64})$")


def is_version_selector(text: str) -> bool:
    return _SELECTOR.match(text) is not None


def pins_folder(root: str) -> str:
    return f"{layout.store_dir(root)}/{PINS_DIR}"


def read_pins(fs: Any, base: str) -> set[str]:
    try:
        names = fs.ls(f"{base}/{layout.STORE_DIR}/{PINS_DIR}", detail=False)
    except (FileNotFoundError, OSError):
        return set()
    return {name.rsplit("/", 1)[-1][:-5] for name in names if name.endswith(".json")}


def find_version(selector: str, root: str, env: str) -> dict[str, Any]:
    """The manifest (with `uri`) a selector names: `TASK[.OUTPUT]@latest`, `...@run:ID`, `[TASK[.OUTPUT]]@SIG`."""
    from dbnd_prefect.history.versions import list_versions, read_json_glob

    match = _SELECTOR.match(selector)
    if match is None:
        raise ParameterError(f"{selector!r} is not a version selector",
                             hint="use TASK.OUTPUT@latest, TASK.OUTPUT@run:RUN_ID or @SIGNATURE (4+ hex digits)")
    task, output, sel = match["task"], match["output"], match["sel"]
    if sel in ("latest",) or sel.startswith("run:"):
        if task is None:
            raise ParameterError(f"{selector}: @{sel} needs a task", hint=f"use TASK.OUTPUT@{sel}")
        if output is not None:
            from dbnd_prefect.versioning.selectors import resolve_selector

            uri = resolve_selector(selector, root, env)  # its errors name what is missing
            return next(m for m in list_versions(root, task, env)
                        if str(m.get("outputs", {}).get(output, {}).get("uri")) == uri)
        found = list_versions(root, task, env)
        if sel.startswith("run:"):
            found = [m for m in found if str(m.get("prefect", {}).get("flow_run_id") or "").startswith(sel[4:].lower())]
    else:
        prefix = sel.lower()
        name = layout.folder_name(task) if task else "*"
        pattern = f"{root.rstrip('/')}/{env}/*/{name}/{name}_{prefix[:layout.SIGNATURE_LENGTH]}*/{layout.MANIFEST_NAME}"
        try:
            found = [m for m in read_json_glob(pattern) if str(m.get("signature", "")).startswith(prefix)
                     and (task is None or m.get("task") == task)]
        except (OSError, ValueError):
            found = []
        if len({m.get("signature") for m in found}) > 1:
            shown = ", ".join(sorted(f"{m.get('task')}@{str(m.get('signature'))[:16]}" for m in found)[:5])
            raise ParameterError(f"{selector}: signature prefix '{sel}' is ambiguous ({shown})",
                                 hint="give more hex digits of the signature")
    if not found:
        raise ParameterError(f"{selector}: no stored version under {root} (env {env})",
                             hint=f"see `dbnd versions {task or 'TASK'}`")
    if output is not None and output not in found[0].get("outputs", {}):
        raise ParameterError(f"{selector}: that version has no output '{output}'",
                             hint=f"its outputs are {', '.join(sorted(found[0].get('outputs', {}))) or 'none'}")
    return found[0]


def _user(getpass: Any) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this container
        return "unknown"


def pin(selector: str, root: str, env: str, note: str | None = None) -> dict[str, Any]:
    """Pin the version a selector names (gc keeps it, and what it read); the pin document."""
    import getpass

    from dbnd_prefect.targets import Target

    manifest = find_version(selector, root, env)
    document = {"signature": manifest["signature"], "task": manifest.get("task"), "selector": selector,
                "manifest": manifest["uri"], "pinned": dt.datetime.now(dt.timezone.utc).isoformat(),
                "user": _user(getpass), "note": note}
    Target(f"{pins_folder(root)}/{manifest['signature']}.json", format="json").save(document)
    return document


def unpin(selector: str, root: str, env: str) -> list[str]:
    """Remove the pins of the versions a selector names (or of a pinned signature prefix); the signatures."""
    from dbnd_prefect.targets.filesystem import filesystem_for_uri

    fs, base = filesystem_for_uri(root)
    pinned = read_pins(fs, base.rstrip("/"))
    sel = selector.lstrip("@").lower()
    if selector.startswith("@") and re.fullmatch(r"[0-9a-f]{4,64}", sel):
        chosen = [s for s in pinned if s.startswith(sel)]
    else:
        chosen = [find_version(selector, root, env)["signature"]]
    chosen = [s for s in chosen if s in pinned]
    if not chosen:
        raise ParameterError(f"{selector}: no pinned version matches", hint="see `dbnd gc --json` for pinned versions")
    for signature in chosen:
        try:
            fs.rm(f"{base.rstrip('/')}/{layout.STORE_DIR}/{PINS_DIR}/{signature}.json")
        except FileNotFoundError:
            pass
    return chosen
