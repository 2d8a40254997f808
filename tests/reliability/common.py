"""Constants and helpers shared by the reliability tests."""

from __future__ import annotations

import os

import numpy as np

# One seed for every random choice of the reliability tests; printed by each test so a failure can be replayed
# with DBND_RELIABILITY_SEED=N.
SEED = int(os.environ.get("DBND_RELIABILITY_SEED", "20261129"))
N_PARTS, CHAIN = 4, 3  # the pipeline run by the process tests: 4 + 3 + 1 = 8 task runs, 10 output files
ROWS = 20_000  # rows of each part (make_part's default)
N_TASK_RUNS = N_PARTS + CHAIN + 1
AWS_NAMES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
             "AWS_EC2_METADATA_DISABLED", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def aws_env() -> dict[str, str]:
    """The S3 settings the s3_bucket fixture put in this process's environment, for a pipeline process."""
    return {name: os.environ[name] for name in AWS_NAMES if name in os.environ}


def expected_totals(n_parts: int = N_PARTS, rows: int = ROWS) -> dict:
    """What `combine` must return, computed here without the library."""
    total = sum(float(np.random.default_rng(i).random(rows).sum()) for i in range(n_parts))
    return {"parts": n_parts, "sum": total}
