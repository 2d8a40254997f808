"""R3: the S3 endpoint (a moto server of this test's own) stops while a pipeline runs, and comes back.

The pipeline (`store_outage` in pipelines.py) is run with `dbnd run` in its own process; its middle task has
`@task(retries=2, retry_delay_seconds=1)` and waits at a gate until the test has stopped the store, so its
output write meets the outage. S3 clients keep their own retry setting (AWS_MAX_ATTEMPTS=2 here, so a failed
attempt takes seconds, not minutes).
- The store comes back before the retry: the task's second attempt writes, the run exits 0, the data verify.
- The store stays down: the task is attempted 1 + retries times, then `dbnd` exits 1 with one line naming the
  task and the output's URI (no traceback, no credentials); nothing is recorded as complete that is not; once the
  store is back, a re-run completes and reuses exactly the task run that had completed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.store_check import inspect_root
from tests.reliability.zygote import Zygote, wait_for_line
from tests.servers import AWS_SECRET_ACCESS_KEY, create_s3_bucket, free_port, set_s3_env, unique_name

pytestmark = pytest.mark.slow

PIPELINE = ["run", "tests.reliability.pipelines.store_outage"]


class Outage:
    """A moto S3 server on a fixed 127.0.0.1 port that can be stopped and started again with its data (moto
    keeps its buckets in this process while the HTTP server is down)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@contextlib.contextmanager
def outage_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Outage, str]]:
    store = Outage()
    store.start()
    try:
        set_s3_env(monkeypatch, store.url)
        bucket = unique_name("outage")
        create_s3_bucket(store.url, bucket)
        yield store, bucket
    finally:
        store.stop()


def attempts(log: Path, pid: int) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith(f"{pid} body during_outage"))


def start_run(forks: Zygote, workdir: Path, root: str, name: str) -> tuple[int, dict[str, Path]]:
    (workdir / "dbnd.toml").write_text(f'[run]\ndata_root = "{root}"\n')
    paths = {"log": workdir / f"{name}.notes", "gate": workdir / f"{name}.gate",
             "retry_gate": workdir / f"{name}.retry-gate", "out": workdir / f"{name}.out"}
    env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}
    env.update(AWS_MAX_ATTEMPTS="2", RELIABILITY_LOG=str(paths["log"]), RELIABILITY_GATE=str(paths["gate"]),
               RELIABILITY_RETRY_GATE=str(paths["retry_gate"]))
    return forks.start(workdir, PIPELINE, paths["out"], env, cli=True), paths


def test_store_back_before_the_retry_completes_the_run(forks, tmp_path, monkeypatch):
    with outage_store(monkeypatch) as (store, bucket):
        root = f"s3://{bucket}/back"
        pid, paths = start_run(forks, tmp_path, root, "back")
        assert wait_for_line(paths["log"], f"{pid} body during_outage attempt=1", pid), paths["out"].read_text()
        store.stop()
        paths["gate"].touch()  # the first attempt now writes its output to a stopped store
        assert wait_for_line(paths["log"], f"{pid} body during_outage attempt=2", pid), paths["out"].read_text()
        store.start()
        paths["retry_gate"].touch()
        code = forks.wait(pid)
        text = paths["out"].read_text()
        assert code == 0, text[-3000:]
        assert attempts(paths["log"], pid) == 2
        assert "Traceback" not in text and not re.search(r"\| (ERROR|CRITICAL) ", text), text[-3000:]
        assert re.search(r"during_outage: Completed", text) and re.search(r"after_outage: Completed", text), text
        state = inspect_root(root)
        assert not state.problems and len(state.complete()) == 3, state


def test_store_staying_down_fails_with_one_line_naming_the_uri_and_a_rerun_completes(forks, tmp_path, monkeypatch):
    with outage_store(monkeypatch) as (store, bucket):
        root = f"s3://{bucket}/down"
        pid, paths = start_run(forks, tmp_path, root, "down")
        assert wait_for_line(paths["log"], f"{pid} body during_outage attempt=1", pid), paths["out"].read_text()
        store.stop()
        paths["gate"].touch()
        paths["retry_gate"].touch()
        code = forks.wait(pid)
        text = paths["out"].read_text()
        store.start()

        assert code == 1, text[-3000:]
        assert attempts(paths["log"], pid) == 3, "the task was not attempted 1 + retries (2) times"
        errors = [line for line in text.splitlines() if line.startswith("dbnd: error:")]
        assert len(errors) == 1, text[-3000:]
        assert "task 'during_outage'" in errors[0] and f"'s3://{bucket}/down/" in errors[0], errors[0]
        assert "Traceback" not in text and AWS_SECRET_ACCESS_KEY not in text, text[-3000:]

        state = inspect_root(root)  # nothing recorded as complete that is not
        assert not state.problems, state.problems
        assert {m["task"] for s, m in state.manifests.items() if s in state.complete()} == {"before_outage"}
        assert not any(m["task"] != "before_outage" for m in state.manifests.values())

        pid, paths = start_run(forks, tmp_path, root, "rerun")
        paths["gate"].touch()
        code = forks.wait(pid)
        text = paths["out"].read_text()
        assert code == 0, text[-3000:]
        assert re.search(r"before_outage: Cached", text) and re.search(r"during_outage: Completed", text), text
        after = inspect_root(root)
        assert not after.problems and len(after.complete()) == 3
        print(f"\nR3 error line: {errors[0]}")
