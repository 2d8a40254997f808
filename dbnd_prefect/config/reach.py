"""Whether a profile's work can reach its data: checked before anything runs.

A profile whose work runs off this machine (a docker or kubernetes pool, a remote Dask or Ray scheduler, Spark
tasks sent to Databricks)
must keep its data, and get its inputs, where that work can reach them. Pure: nothing here talks to a
server or a cluster.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
from typing import Any, Mapping

from dbnd_prefect.config.profile_model import DaskRunner, RayRunner, ResolvedProfile
from dbnd_prefect.errors import ConfigError

REMOTE_ROOT_FIX = "use an s3://, gs:// or az:// data root or a remote storage block"


def remote_compute(resolved: ResolvedProfile) -> str | None:
    """What in the profile runs off this machine (a work pool or a cluster), or None."""
    profile = resolved.profile
    if profile.work_pool.type == "kubernetes":
        return f"its work pool '{profile.work_pool.name}' is a kubernetes pool"
    if profile.work_pool.type == "docker":
        return f"its work pool '{profile.work_pool.name}' is a docker pool"
    runner = profile.task_runner
    if isinstance(runner, (DaskRunner, RayRunner)) and runner.address and not _is_this_machine(runner.address):
        return f"its {runner.type} scheduler {runner.address} is on another machine"
    for settings in resolved.plugin_settings.values():  # a plugin's engine (Spark tasks sent to Databricks)
        why = getattr(settings, "runs_work_off_this_machine", lambda name: None)(resolved.name)
        if why:
            return why
    return None


def check_data_reachable(resolved: ResolvedProfile, data_root: str, storage_block: str | None) -> None:
    """ConfigError when the profile runs work off this machine but keeps data on it.

    A docker pool may reach a local root that one of its `volumes` mounts at the same path.
    """
    why = remote_compute(resolved)
    if why is None:
        return
    if storage_block:
        if not storage_block.startswith("local-file-system/"):
            return
        where = f"storage block '{storage_block}' is a local folder"
    else:
        from dbnd_prefect.targets import normalize_uri, split_uri

        root = normalize_uri(data_root)
        protocol, path = split_uri(root)
        if protocol not in ("file", "memory"):
            return
        if protocol == "file" and resolved.profile.work_pool.type == "docker" and mounted(path, resolved):
            return
        where = f"data root '{root}' is on this machine"
    name = resolved.name
    raise ConfigError(f"environment '{name}' runs work off this machine ({why}) but its {where}",
                      hint=f"{REMOTE_ROOT_FIX}: set env.{name}.data_root or env.{name}.storage_block")


def check_inputs_reachable(resolved: ResolvedProfile, task_name: str, inputs: Mapping[str, Any]) -> None:
    """ConfigError naming the first data input (`inputs`: name -> URI or path) that is a local file when the
    profile runs work off this machine (a task there could not read it)."""
    why = remote_compute(resolved)
    if why is None:
        return
    from dbnd_prefect.targets import split_uri

    for key, text in inputs.items():
        protocol, path = split_uri(os.fspath(text))
        if protocol in ("file", "memory") and not (protocol == "file" and mounted(path, resolved)):
            raise ConfigError(
                f"input {task_name}.{key} = {os.fspath(text)!r} is on this machine, but environment "
                f"'{resolved.name}' runs work off it ({why})",
                hint=f"upload it and pass its URI: --set {task_name}.{key}=s3://.../{os.path.basename(path)} "
                     "(or gs://, az://)")


def mounted(path: str, resolved: ResolvedProfile) -> bool:
    """Whether a volume of the profile mounts `path` at the same path inside its containers."""
    for volume in [*resolved.profile.volumes, *(resolved.profile.job_variables.get("volumes") or [])]:
        host, _, rest = str(volume).partition(":")
        inside = rest.partition(":")[0]
        if host and host == inside and (path == host or path.startswith(host.rstrip("/") + "/")):
            return True
    return False


def _is_this_machine(address: str) -> bool:
    parsed = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    host = parsed.hostname or ""
    if parsed.scheme == "inproc" or host in ("", "localhost", socket.gethostname(), socket.getfqdn()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["REMOTE_ROOT_FIX", "remote_compute", "check_data_reachable", "check_inputs_reachable", "mounted"]
