"""Spark task overhead: a dbnd Spark task vs the same pyspark code called directly, and reuse without a Spark job.

    .venv/bin/python bench/spark_rows.py                     # 1e7-row parquet aggregation, medians of 5
    .venv/bin/python bench/spark_rows.py --rows 1000000 --reps 3
    .venv/bin/python bench/spark_rows.py --rounds 12 --reps 5  # a job of about 10 s: the fair overhead ratio

Starts a Prefect server (throw-away PREFECT_HOME) and one local Spark session (`local[2]`, from an environment
profile), writes a parquet folder of `--rows` rows with Spark, then alternates in this process:
- raw: `spark.read.parquet(path)`, a group-by aggregation (sum, mean, count over 1,000 keys) written as
  parquet, the same function a task would hold;
- prefect: the same code in a raw Prefect `@task` called by a `@flow` (heartbeat off, nothing persisted): what a
  flow run and a task run add, which a dbnd call pays too;
- bare: the same raw Prefect `@task` called outside any flow (a task run and no flow run, Prefect's cheapest way
  to run code): Prefect's own floor for this bound, reported next to a trivial task called the same way;
- dbnd: the same function as a `@task` taking `pyspark.sql.DataFrame` (read by the library from the path) and
  returning the aggregate (written by the library: staged folder, rename, manifest), each repetition under a
  new `task_version` so it is computed, through Prefect (a top-level call is a one-task flow run).
Two warm-ups each, then repetitions rotating which variant goes first. Then the dbnd call again with an
unchanged version and input: Cached, and the Spark jobs it ran are counted (target: none). Prints markdown
rows (bench/report.py) and the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO))

from report import Row, markdown_table, median  # noqa: E402
from server import QUIET_ENV, prefect_server, temporary_home  # noqa: E402

TARGET = 1.05


def aggregate(frame: Any, rounds: int = 0) -> Any:
    """The benchmark's query: per-key sum, mean and count; with `rounds`, also the sum of a hash of `rounds`
    nested SHA-256 of each value (CPU work per row: about 0.8 s per round on 1e7 rows, local[2])."""
    from pyspark.sql import functions as F

    columns = [F.sum("v").alias("total"), F.mean("v").alias("mean"), F.count("v").alias("n")]
    if rounds:
        digest = F.col("v").cast("string")
        for _ in range(rounds):
            digest = F.sha2(digest, 256)
        columns.append(F.sum(F.xxhash64(digest) % 1000).alias("hashed"))
    return frame.groupBy("k").agg(*columns)


def _spark_task() -> Any:
    """The task, defined at import of pyspark (its annotation must resolve at module level)."""
    from spark_task import aggregate_sales

    return aggregate_sales


def _jobs(session: Any) -> int:
    return len(session.sparkContext.statusTracker().getJobIdsForGroup(None))


def measure(rows: int, reps: int, home: Path, rounds: int = 0) -> dict[str, Any]:
    from dbnd_prefect import run
    from dbnd_prefect.config import reset_config_cache
    from dbnd_prefect.spark import spark_session

    project = home / "project"
    project.mkdir()
    (project / "dbnd.toml").write_text('[run]\ndata_root = "data"\nenv = "bench"\n\n[env.bench.spark]\nengine = "local"\n'
                                       'cores = 2\nmemory = "2g"\nconf = { "spark.sql.shuffle.partitions" = "4" }\n')
    os.chdir(project)
    reset_config_cache()
    began = time.perf_counter()
    spark = spark_session()
    session_seconds = time.perf_counter() - began
    source = str(project / "sales.parquet")
    spark.range(rows).selectExpr("id % 1000 as k", "cast(id as double) * 0.5 as v").write.parquet(source)
    aggregate_sales = _spark_task()

    def raw(rep: int) -> float:
        start = time.perf_counter()
        aggregate(spark.read.parquet(source), rounds).write.mode("overwrite").parquet(str(project / f"raw-{rep}.parquet"))
        return time.perf_counter() - start

    from prefect import flow, task as prefect_task

    @prefect_task
    def raw_aggregate(out: str) -> None:
        aggregate(spark.read.parquet(source), rounds).write.mode("overwrite").parquet(out)

    @flow
    def raw_flow(out: str) -> None:
        raw_aggregate(out)

    def prefect(rep: int) -> float:
        from worker import no_heartbeat

        with no_heartbeat():
            start = time.perf_counter()
            raw_flow(str(project / f"prefect-{rep}.parquet"))
            return time.perf_counter() - start

    def bare(rep: int) -> float:
        from worker import no_heartbeat

        with no_heartbeat():
            start = time.perf_counter()
            raw_aggregate(str(project / f"bare-{rep}.parquet"))  # a task run with no flow run: Prefect's cheapest
            return time.perf_counter() - start

    @prefect_task
    def trivial() -> None:
        pass

    def fixed_cost() -> float:
        """Median wall of a trivial raw Prefect task called outside any flow: Prefect's fixed cost of a run."""
        from worker import no_heartbeat

        with no_heartbeat():
            trivial()
            walls = []
            for _ in range(9):
                start = time.perf_counter()
                trivial()
                walls.append(time.perf_counter() - start)
        return median(walls)

    def dbnd(rep: int) -> float:
        start = time.perf_counter()
        result = run(aggregate_sales, set={"aggregate_sales.data": source, "aggregate_sales.rounds": rounds},
                     task_version=f"bench-{rep}")
        elapsed = time.perf_counter() - start
        assert [entry["state"] for entry in result.run.task_runs] == ["Completed"], result.run.task_runs
        return elapsed

    for warm_up in (-2, -1):  # the first jobs compile code paths in the JVM; the first dbnd call imports Prefect
        raw(warm_up)
        prefect(warm_up)
        bare(warm_up)
        dbnd(warm_up)
    timers = {"raw": raw, "prefect": prefect, "bare": bare, "dbnd": dbnd}
    seconds: dict[str, list[float]] = {name: [] for name in timers}
    jobs: dict[str, list[int]] = {name: [] for name in timers}
    for rep in range(reps):
        # rotating which goes first: the JVM keeps getting faster, which would favour the later ones
        order = list(timers)[rep % len(timers):] + list(timers)[:rep % len(timers)]
        for variant in order:
            before = _jobs(spark)
            seconds[variant].append(timers[variant](rep))
            jobs[variant].append(_jobs(spark) - before)
    jobs_before = _jobs(spark)
    start = time.perf_counter()
    cached = run(aggregate_sales, set={"aggregate_sales.data": source, "aggregate_sales.rounds": rounds},
                 task_version=f"bench-{reps - 1}")
    reuse_seconds = time.perf_counter() - start
    reuse_jobs = _jobs(spark) - jobs_before
    return {"rows": rows, "reps": reps, "session_seconds": session_seconds, **seconds,
            "prefect_fixed_seconds": fixed_cost(),
            **{f"{name}_spark_jobs": counted for name, counted in jobs.items()},
            "reuse_seconds": reuse_seconds, "reuse_spark_jobs": reuse_jobs,
            "reuse_states": [entry["state"] for entry in cached.run.task_runs]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=0,
                        help="nested SHA-256 rounds per row: 12 makes the job last about 10 s on 1e7 rows")
    args = parser.parse_args()
    with temporary_home() as home, prefect_server(home) as api_url:
        os.environ.update({**QUIET_ENV, "PREFECT_HOME": str(home), "PREFECT_API_URL": api_url,
                           "PREFECT_LOGGING_LEVEL": "WARNING", "DBND_CACHE_DIR": str(home / "cache")})
        try:
            result = measure(args.rows, args.reps, home, args.rounds)
        finally:
            from dbnd_prefect.spark.engine import stop_sessions

            stop_sessions()
    raw, prefect, dbnd = median(result["raw"]), median(result["prefect"]), median(result["dbnd"])
    job = f"{args.rows:,}-row parquet aggregation" + (f" + {args.rounds} SHA-256 rounds per row" if args.rounds else "")
    rows = [
        Row("spark_task", f"Spark task, {job} (local[2]; raw: the same pyspark code called directly)", raw, dbnd, "s", target=f"≤ {TARGET}×",
            check=lambda r: r.ratio <= TARGET, raw_note="read + aggregate + write", dbnd_note="task call"),
        Row("spark_task_prefect", "same, raw: the same pyspark code in a Prefect task of a flow (what a flow run and "
                                  "a task run cost is Prefect's: the wrapper's own cost is the difference)", prefect,
            dbnd, "s", target=f"≤ {TARGET}×", check=lambda r: r.ratio <= TARGET, raw_note="flow + task call"),
        Row("spark_task_bare", "Prefect's own floor: the same pyspark code in a raw Prefect `@task` called outside any "
                               "flow (a task run, no flow run), vs called directly", raw, median(result["bare"]), "s",
            raw_note="read + aggregate + write",
            dbnd_note=f"raw Prefect, no dbnd; a trivial task so called: {result['prefect_fixed_seconds'] * 1000:.0f} ms"),
        Row("spark_reuse", "same task re-run on unchanged input (raw: computes again)", raw,
            result["reuse_seconds"], "s", target="Cached, 0 Spark jobs",
            check=lambda r: result["reuse_spark_jobs"] == 0 and result["reuse_states"] == ["Cached"],
            dbnd_note=f"{result['reuse_spark_jobs']} Spark jobs, {result['reuse_states']}"),
    ]
    print(json.dumps(result, indent=1))
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
