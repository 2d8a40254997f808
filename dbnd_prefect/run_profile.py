"""The profile a run executes in: checked before anything runs, then applied.

Checks that a profile whose work runs off this machine (a docker or kubernetes pool, a remote Dask or
Ray scheduler) keeps its data, and gets its inputs, where that work can reach them; applies the
profile's task runner and environment variables around a pipeline, or around a task body in another
process. What a profile holds and how it is resolved is profiles.py.
"""

from __future__ import annotations

import contextlib
import copy
import ipaddress
import os
import socket
import threading
import urllib.parse
from typing import Any, Iterator, Mapping

from dbnd_prefect.config.model import DbndConfig
from dbnd_prefect.errors import ConfigError
from dbnd_prefect.profiles import DaskRunner, RayRunner, ResolvedProfile, ThreadRunner, active_profile

REMOTE_ROOT_FIX = "use an s3://, gs:// or az:// data root or a remote storage block"


def task_runner_for(resolved: ResolvedProfile) -> Any:
    """The Prefect task runner the profile asks for, or None when it configures none (the pipeline's
    own runner, the bounded thread pool by default, stays)."""
    if not resolved.configured("task_runner"):
        return None
    spec = resolved.profile.task_runner
    if isinstance(spec, ThreadRunner):
        from prefect.task_runners import ThreadPoolTaskRunner

        if spec.max_workers is None:
            from dbnd_prefect.run_context import default_task_runner

            return default_task_runner()
        return ThreadPoolTaskRunner(max_workers=spec.max_workers)
    if isinstance(spec, DaskRunner):
        try:
            import prefect_dask  # noqa: F401
        except ImportError:
            raise ConfigError(f"env.{resolved.name}.task_runner.type = 'dask' needs prefect-dask, which is not "
                              "installed", hint="pip install prefect-dask") from None
        from dbnd_prefect.task_runners import dask_task_runner

        if spec.address:
            return dask_task_runner(address=spec.address)
        cluster = {"n_workers": spec.n_workers, "threads_per_worker": spec.threads_per_worker}
        return dask_task_runner(cluster_kwargs={"dashboard_address": "127.0.0.1:0", "host": "127.0.0.1",
                                                **{k: v for k, v in cluster.items() if v is not None}})
    try:
        from prefect_ray import RayTaskRunner  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(f"env.{resolved.name}.task_runner.type = 'ray' needs prefect-ray, which is not installed",
                          hint="pip install prefect-ray, or use a thread or dask task runner") from None
    return RayTaskRunner(address=spec.address) if spec.address else RayTaskRunner()


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


def mounted(path: str, resolved: ResolvedProfile) -> bool:
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


def check_run_profile(config: DbndConfig, obj: Any = None, run: Any = None) -> ResolvedProfile:
    """The active profile, after checking (before anything runs) that its runs can reach their data (the data
    root, and the data inputs of `obj` bound in `run`) and that its task runner's package is installed."""
    from dbnd_prefect.config import run_settings

    resolved = active_profile(config)
    settings = run_settings(config)
    check_data_reachable(resolved, settings.data_root, settings.storage_block)
    if obj is not None and run is not None:
        check_inputs_reachable(resolved, obj, run)
    if obj is not None:
        from dbnd_prefect.remote_tasks import check_task_envs

        check_task_envs(obj, config)  # tasks with a task_env of their own: the profile and its work pool
    task_runner_for(resolved)  # made, not started: connects to nothing
    return resolved


def check_inputs_reachable(resolved: ResolvedProfile, obj: Any, run: Any) -> None:
    """ConfigError naming the first data input of `obj` that is a local file when the profile runs work off
    this machine (a task there could not read it)."""
    why = remote_compute(resolved)
    if why is None:
        return
    from dbnd_prefect.targets import split_uri

    for key, value in obj.bind((), {}, run).items():
        spec = obj.param_map[key]
        text = getattr(value, "uri", value)
        if not spec.is_data or not isinstance(text, (str, os.PathLike)):
            continue
        protocol, path = split_uri(os.fspath(text))
        if protocol in ("file", "memory") and not (protocol == "file" and mounted(path, resolved)):
            raise ConfigError(
                f"input {obj.name}.{key} = {os.fspath(text)!r} is on this machine, but environment "
                f"'{resolved.name}' runs work off it ({why})",
                hint=f"upload it and pass its URI: --set {obj.name}.{key}=s3://.../{os.path.basename(path)} "
                     "(or gs://, az://)")


_env_lock = threading.Lock()
# key -> [value before the first block that set it, blocks using it]: blocks overlap on a worker running
# several task bodies of a run at once, and the variable must stay until the last of them ends
_env_users: dict[str, list[Any]] = {}


@contextlib.contextmanager
def environment_variables(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in this process's environment for the block; earlier values come back after the last
    block (of any thread) that set them."""
    if not values:
        yield
        return
    with _env_lock:
        for key, value in values.items():
            users = _env_users.setdefault(key, [os.environ.get(key), 0])
            users[1] += 1
            os.environ[key] = value
    try:
        yield
    finally:
        with _env_lock:
            for key in values:
                users = _env_users[key]
                users[1] -= 1
                if users[1]:
                    continue
                del _env_users[key]
                if users[0] is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = users[0]


_run_envs: dict[str, Mapping[str, str]] = {}


def profile_environment(run: Any) -> Mapping[str, str]:
    """The environment variables of `run`'s profile (resolved once per run in a process): what a task body
    running in another process (a Dask worker) gets around it, as the driver got them around the pipeline."""
    found = _run_envs.get(run.run_uid)
    if found is None:
        found = active_profile(run.config).profile.env
        if len(_run_envs) >= 16:  # a long-lived worker serves many runs: keep the latest few
            _run_envs.pop(next(iter(_run_envs)))
        _run_envs[run.run_uid] = found
    return found


@contextlib.contextmanager
def profile_applied(flow: Any, run: Any) -> Iterator[Any]:
    """Run `flow` (a pipeline) in `run`'s profile: checked, with its environment variables set; yields the
    flow to call, a copy with the profile's task runner when the profile names one."""
    resolved = check_run_profile(run.config, flow)
    runner = task_runner_for(resolved)
    with environment_variables(resolved.profile.env):
        yield flow if runner is None else with_task_runner(flow, runner)


def with_task_runner(flow: Any, runner: Any) -> Any:
    """A copy of a Prefect flow that runs its tasks on `runner` (the flow itself is left as it is)."""
    changed = copy.copy(flow)
    changed.task_runner = runner
    return changed
