"""A profile's worker settings as the job variables of a Prefect work pool (process, docker, kubernetes).

A profile names what its runs need (`image`, `env`, `namespace`, `cpu`, `memory`, `service_account`,
`volumes`) once; `job_variables` turns that into the variables the pool type's base job template reads
(`service_account` becomes Kubernetes' `service_account_name`, `memory = "512Mi"` becomes Docker's
`mem_limit = "512m"`, ...). A raw `job_variables` table in the profile is passed through last, for any other
variable of the pool's template. `base_job_template` gives the template to create a pool with (also printed
by `python -m dbnd_prefect.work_pools TYPE`), and `check_job_variables` names job variables a pool's template
does not declare.

Pure functions: nothing here talks to a Prefect server, Docker or Kubernetes.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dbnd_prefect.errors import ConfigError, suggest

POOL_TYPES = ("process", "docker", "kubernetes")

# Which profile keys each pool type understands.
PROFILE_KEYS: dict[str, frozenset[str]] = {
    "process": frozenset({"env", "job_variables"}),
    "docker": frozenset({"image", "env", "cpu", "memory", "volumes", "job_variables"}),
    "kubernetes": frozenset({"image", "env", "namespace", "cpu", "memory", "service_account", "volumes",
                             "job_variables"}),
}
ALL_PROFILE_KEYS = frozenset().union(*PROFILE_KEYS.values())

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?\s*$")
_CPU = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m)?\s*$")


def job_variables(pool_type: str, settings: Mapping[str, Any], *, where: str = "profile") -> dict[str, Any]:
    """The job variables for a `pool_type` work pool from a profile's worker `settings`.

    `where` names the settings in error messages (e.g. "profile 'k8s_prod'"). Raises `ConfigError` for an
    unknown pool type, a key the pool type cannot use, or a value it cannot take.
    """
    pool_type = check_pool_type(pool_type, where=where)
    unknown = sorted(set(settings) - ALL_PROFILE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown worker setting {unknown[0]!r}{suggest(unknown[0], ALL_PROFILE_KEYS)}")
    misplaced = sorted(set(settings) - PROFILE_KEYS[pool_type])
    if misplaced:
        users = [t for t in POOL_TYPES if misplaced[0] in PROFILE_KEYS[t]]
        raise ConfigError(f"{where}: {misplaced[0]!r} does not apply to a {pool_type} work pool "
                          f"(it is a setting of {' and '.join(users)} pools); remove it or change the pool type")

    variables: dict[str, Any] = {}
    if "env" in settings:
        variables["env"] = _env(settings["env"], where)
    if "image" in settings:
        variables["image"] = _text(settings["image"], "image", where)
    if pool_type == "docker":
        if "cpu" in settings:
            variables["container_create_kwargs"] = {"nano_cpus": round(_cpus(settings["cpu"], where) * 1e9)}
        if "memory" in settings:
            variables["mem_limit"] = _docker_memory(_memory_bytes(settings["memory"], where))
        if "volumes" in settings:
            variables["volumes"] = [":".join(_volume(v, where)) for v in _list(settings["volumes"], "volumes", where)]
    elif pool_type == "kubernetes":
        if "namespace" in settings:
            variables["namespace"] = _text(settings["namespace"], "namespace", where)
        if "service_account" in settings:
            variables["service_account_name"] = _text(settings["service_account"], "service_account", where)
        if "cpu" in settings:
            variables["cpu_request"] = variables["cpu_limit"] = _kubernetes_cpu(_cpus(settings["cpu"], where))
        if "memory" in settings:
            _memory_bytes(settings["memory"], where)  # validated; Kubernetes takes the quantity as written
            variables["memory_request"] = variables["memory_limit"] = str(settings["memory"]).strip()
        if "volumes" in settings:
            variables["volumes"], variables["volume_mounts"] = _kubernetes_volumes(
                _list(settings["volumes"], "volumes", where), where)

    raw = settings.get("job_variables", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: 'job_variables' must be a table of job variable names to values")
    for name, value in raw.items():
        if name == "env" and isinstance(value, Mapping):
            variables["env"] = {**variables.get("env", {}), **_env(value, where)}
        else:
            variables[str(name)] = copy.deepcopy(value)
    return variables


def check_pool_type(pool_type: str, *, where: str = "profile") -> str:
    """`pool_type` if this library knows it, else `ConfigError` naming the closest type."""
    if pool_type not in POOL_TYPES:
        raise ConfigError(f"{where}{': ' if where else ''}unknown work pool type {pool_type!r}{suggest(str(pool_type), POOL_TYPES)} "
                          f"(one of: {', '.join(POOL_TYPES)})")
    return pool_type


def base_job_template(pool_type: str) -> dict[str, Any]:
    """The base job template to create a `pool_type` work pool with.

    Prefect's default for the type; for Kubernetes it also declares `volumes` and `volume_mounts` and puts
    them in the pod spec (Prefect's default has no volumes). Imports the worker's package (prefect-docker,
    prefect-kubernetes) only when asked.
    """
    pool_type = check_pool_type(pool_type, where="")
    if pool_type == "process":
        from prefect.workers.process import ProcessWorker as worker
    elif pool_type == "docker":
        from prefect_docker.worker import DockerWorker as worker
    else:
        from prefect_kubernetes.worker import KubernetesWorker as worker
    template = copy.deepcopy(worker.get_default_base_job_template())
    if pool_type == "kubernetes":
        for name, description in (("volumes", "Volumes of the job's pod (Kubernetes volume objects)."),
                                  ("volume_mounts", "Where the volumes are mounted in the flow run container.")):
            template["variables"]["properties"][name] = {
                "title": name.replace("_", " ").capitalize(), "description": description,
                "type": "array", "items": {"type": "object"}, "default": []}
        pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
        pod["volumes"] = "{{ volumes }}"
        pod["containers"][0]["volumeMounts"] = "{{ volume_mounts }}"
    return template


def check_job_variables(template: Mapping[str, Any], variables: Mapping[str, Any], *,
                        where: str = "profile") -> None:
    """Raise `ConfigError` naming the first job variable that the base job `template` does not declare."""
    declared = set(template.get("variables", {}).get("properties", {}))
    for name in sorted(variables):
        if name not in declared:
            raise ConfigError(f"{where}: the work pool's base job template has no job variable {name!r}"
                              f"{suggest(name, declared)}")


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    return value.strip()


def _list(value: Any, key: str, where: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"{where}: {key!r} must be a list")
    return value


def _env(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: 'env' must be a table of variable names to values")
    env = {}
    for name, item in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{where}: env name {name!r} is not a valid environment variable name")
        if isinstance(item, (dict, list, tuple, set)) or item is None:  # the value may be a secret: never shown
            raise ConfigError(f"{where}: env {name!r} must be a string, number or boolean")
        env[name] = str(item).lower() if isinstance(item, bool) else str(item)
    return env


def _cpus(value: Any, where: str) -> float:
    """A CPU amount (`2`, `0.5`, `"500m"`) in CPUs."""
    match = _CPU.match(str(value)) if not isinstance(value, bool) else None
    cpus = (float(match[1]) / (1000 if match[2] else 1)) if match else 0.0
    if not cpus > 0 or not math.isfinite(cpus):
        raise ConfigError(f"{where}: cpu {value!r} is not a CPU amount (e.g. 2, 0.5 or \"500m\")")
    return cpus


def _kubernetes_cpu(cpus: float) -> str:
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _memory_bytes(value: Any, where: str) -> int:
    """A memory amount in Kubernetes quantity notation (`"512Mi"`, `"1G"`, `1073741824`) in bytes."""
    match = _MEMORY.match(str(value)) if not isinstance(value, bool) else None
    size = float(match[1]) * (_BINARY.get(match[2]) or _DECIMAL.get(match[2]) or 1) if match else 0.0
    if not size >= 1:
        raise ConfigError(f"{where}: memory {value!r} is not a memory amount (e.g. \"512Mi\", \"2Gi\" or \"1G\")")
    return int(size)


def _docker_memory(size: int) -> str:
    """Bytes in Docker's notation (binary multiples: `m` is MiB)."""
    for suffix, unit in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return f"{size}b"


def _volume(spec: Any, where: str) -> tuple[str, ...]:
    """`"source:target"` or `"source:target:ro"` (or `:rw`) split in its parts."""
    parts = tuple(spec.split(":")) if isinstance(spec, str) else ()
    if len(parts) not in (2, 3) or not all(parts) or not parts[1].startswith("/") or (
            len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise ConfigError(f"{where}: volume {spec!r} is not \"source:/path/in/container\" "
                          "(optionally followed by \":ro\")")
    return parts


def _kubernetes_volumes(specs: Sequence[Any], where: str) -> tuple[list[dict], list[dict]]:
    """Pod volumes and container mounts: an absolute source is a hostPath, any other a PersistentVolumeClaim."""
    volumes, mounts = [], []
    for index, spec in enumerate(specs):
        source, target, *mode = _volume(spec, where)
        name = f"dbnd-volume-{index}"
        volumes.append({"name": name, "hostPath": {"path": source}} if source.startswith("/")
                       else {"name": name, "persistentVolumeClaim": {"claimName": source}})
        mounts.append({"name": name, "mountPath": target, "readOnly": mode == ["ro"]})
    return volumes, mounts


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dbnd_prefect.work_pools TYPE`: print the base job template to create a TYPE pool with."""
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(f"usage: python -m dbnd_prefect.work_pools {{{','.join(POOL_TYPES)}}}", file=sys.stderr)
        return 2
    try:
        template = base_job_template(args[0])
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(json.dumps(template, indent=2))
    return 0


def profile_job_variables(resolved: Any, profile: str) -> dict[str, Any]:
    """The job variables of a deployment for `profile` (a resolved profile): the pool type's image, namespace,
    resources, volumes and env from the profile, plus `DBND__RUN__ENV` so the run uses the profile's settings."""
    variables = resolved.job_variables()
    variables["env"] = {**dict(variables.get("env") or {}), "DBND__RUN__ENV": profile}
    return variables


if __name__ == "__main__":
    raise SystemExit(main())
