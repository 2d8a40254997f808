"""Kept at this path for `python -m dbnd_prefect.work_pools TYPE`, which prints the base job template to create
a work pool of TYPE with (see config/work_pools.py)."""

from dbnd_prefect.config.work_pools import base_job_template, check_job_variables, job_variables, main

__all__ = ["base_job_template", "check_job_variables", "job_variables", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
