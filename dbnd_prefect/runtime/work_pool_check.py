"""Whether a profile's work pool exists on the Prefect server, with the profile's type."""

from __future__ import annotations

from dbnd_prefect.errors import ConfigError


def check_work_pool(pool: str, pool_type: str, profile: str, api_url: str | None,
                    consequence: str = "nothing deployed") -> None:
    """ConfigError when the profile's work pool is missing on the server or of another type."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:  # sync: also callable with an event loop running (Jupyter)
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            found = None
    where = f" on the Prefect server at {api_url}" if api_url else ""
    if found is None:
        template = (" --base-job-template FILE (with json.dumps(dbnd_prefect.work_pools.base_job_template("
                    "'kubernetes')), for volumes)") if pool_type == "kubernetes" else ""
        raise ConfigError(f"work pool '{pool}' of environment '{profile}' does not exist{where}; {consequence}",
                          hint=f"create it: prefect work-pool create {pool} --type {pool_type}{template}")
    if found.type != pool_type:
        raise ConfigError(f"work pool '{pool}' is a {found.type} pool, but environment '{profile}' expects "
                          f"{pool_type}; {consequence}", hint=f"set env.{profile}.work_pool to a {found.type} "
                                                              f"pool, or name another pool")


__all__ = ["check_work_pool"]
