"""What the staged upload costs: a Spark DataFrame written by dbnd's Spark writer with local Spark to a local
folder vs to an S3 root (moto on 127.0.0.1), where it is staged on local disk and uploaded `_SUCCESS` last.

    .venv/bin/python bench/spark_s3_rows.py [--rows 2000000] [--reps 3]

One local Spark session (`local[2]`), one moto server in this process; alternating, medians of REPS. The S3
side's time includes the Spark job, the upload and the listing and checksum of the uploaded folder, as a task
output pays them; the upload alone is reported beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    import boto3

    boto3.client("s3").create_bucket(Bucket="bench")
    from dbnd_prefect.config import config_context
    from dbnd_prefect.spark import io, spark_session
    from dbnd_prefect.targets import Target

    with tempfile.TemporaryDirectory(prefix="dbnd-bench-spark-s3-") as folder, config_context({
            "run.env": "bench", "env.bench.spark": {"engine": "local", "cores": 2,
                                                     "conf": {"spark.sql.shuffle.partitions": "2"}}}):
        spark = spark_session()
        frame = spark.range(args.rows).selectExpr("id", "id % 1000 as key", "rand() as x").cache()
        frame.count()
        uploads: list[float] = []
        real_upload = io._upload

        def timed_upload(staging: str, target: Target) -> None:
            began = time.perf_counter()
            real_upload(staging, target)
            uploads.append(time.perf_counter() - began)

        io._upload = timed_upload
        seconds: dict[str, list[float]] = {"local": [], "s3": []}
        for rep in range(args.reps + 1):  # the first round warms up
            for side in (("local", "s3") if rep % 2 else ("s3", "local")):
                uri = f"{folder}/{side}-{rep}/result.parquet" if side == "local" else \
                    f"s3://bench/{side}-{rep}/result.parquet"
                began = time.perf_counter()
                info = io.save(frame, Target(uri), {})
                if rep:
                    seconds[side].append(time.perf_counter() - began)
        server.stop()
    local, s3, upload = (statistics.median(v) for v in (seconds["local"], seconds["s3"], uploads[1:]))
    print(f"| what | local folder s | S3 (staged + upload) s | ratio | upload alone s |")
    print("|---|---:|---:|---:|---:|")
    print(f"| Spark DataFrame of {args.rows:,} rows written as parquet ({info['files']} files, "
          f"{info['bytes'] / 1e6:.1f} MB), medians of {args.reps} | {local:.2f} | {s3:.2f} | {s3 / local:.2f}x | "
          f"{upload:.2f} |")


if __name__ == "__main__":
    main()
