"""Concurrent runs compute once: processes that want one signature at the same time wait for the one that
computes it and reuse its outputs (run.serialize, a SERIALIZABLE cache policy with SignatureLocks on local roots,
ObjectStoreLocks on S3), and a holder that crashed releases its lock when it expires; on local and moto S3 roots."""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from dbnd_prefect import task
from dbnd_prefect.engine.signature_locks import LockWaitTimeout, SignatureLocks

REPO = Path(__file__).resolve().parent.parent

# Each `dbnd` process appends its pid to started.txt when it imports the module (to find the task); the body
# appends its pid to counter.txt. The first body waits for every process to have started (so that they
# really overlap), then sleeps; SLOW_FIRST makes the first body sleep until it is killed.
TASKS = textwrap.dedent('''
    import os, time
    from dbnd_prefect import task

    with open("started.txt", "a") as f:
        f.write(f"{os.getpid()}\\n")


    def _lines(name):
        try:
            with open(name) as f:
                return f.read().split()
        except FileNotFoundError:
            return []


    @task
    def once_counted(n: int = 1) -> int:
        with open("counter.txt", "a") as f:
            f.write(f"{os.getpid()}\\n")
        if len(_lines("counter.txt")) == 1:
            deadline = time.monotonic() + 60
            while len(_lines("started.txt")) < int(os.environ["PROCESSES"]) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(float(os.environ.get("SLOW_FIRST", "3")))
        return n * 10
''')


def _start(workdir: Path, processes: int, *extra: str, env: dict[str, str] | None = None) -> list[subprocess.Popen]:
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir), str(REPO)]),
                "PROCESSES": str(processes), **(env or {})}
    return [subprocess.Popen([sys.executable, "-m", "dbnd_prefect", "run", "once_tasks.once_counted", "--set", "n=3",
                              *extra], cwd=workdir, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(processes)]


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _result_path(stdout: str) -> str:
    found = re.findall(r"^\s+result\s+(\S+)$", stdout, re.MULTILINE)
    assert len(found) == 1, stdout
    return found[0]


@pytest.fixture(params=["local", "s3"])
def shared_root(request, workdir) -> tuple[list[str], "Callable[[], list[str]]", "Callable[[str], str]"]:
    """The root the processes share: ./data, or a fresh bucket on moto S3 (conditional-write locks).
    (extra `dbnd run` arguments, the lock objects' contents, the stored value's bytes by URI)."""
    if request.param == "local":
        locks = workdir / "data" / ".dbnd" / "locks"
        return [], lambda: [p.read_text() for p in locks.glob("*.lock")] if locks.exists() else [], \
            lambda uri: Path(uri).read_bytes()
    bucket = request.getfixturevalue("s3_bucket")
    import s3fs

    fs = s3fs.S3FileSystem()
    folder = f"{bucket}/root/.dbnd/locks"

    def lock_contents() -> list[str]:
        fs.invalidate_cache()
        return [fs.cat_file(p).decode() for p in fs.find(folder) if p.endswith(".lock")]

    return ["--set", f"run.data_root=s3://{bucket}/root"], lock_contents, lambda uri: fs.cat_file(uri)


def test_four_processes_wanting_one_signature_compute_it_once(workdir, shared_root):
    extra, lock_contents, read = shared_root
    (workdir / "once_tasks.py").write_text(TASKS)
    procs = _start(workdir, 4, *extra)
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, err[-3000:]
    assert len(_lines(workdir / "counter.txt")) == 1  # the body ran once
    assert len(_lines(workdir / "started.txt")) == 4
    states = sorted(re.search(r"once_counted: (\w+)", out).group(1) for out, _ in outs)
    assert states == ["Cached", "Cached", "Cached", "Completed"]
    paths = {_result_path(out) for out, _ in outs}  # every process names the one stored value
    assert len(paths) == 1
    assert pickle.loads(read(paths.pop())) == 30
    assert lock_contents() == []  # every lock released


def test_a_killed_holder_blocks_the_others_no_longer_than_the_lock_expiry(workdir, shared_root):
    extra, lock_contents, _ = shared_root
    (workdir / "once_tasks.py").write_text(TASKS)
    expiry = 5
    procs = _start(workdir, 4, "--set", f"run.lock_expiry={expiry}", *extra, env={"SLOW_FIRST": "600"})
    try:
        deadline = time.monotonic() + 120
        while not _lines(workdir / "counter.txt"):
            assert time.monotonic() < deadline, "no process started the task"
            time.sleep(0.05)
        holder_pid = int(_lines(workdir / "counter.txt")[0])
        holder = next(p for p in procs if p.pid == holder_pid)
        locks = lock_contents()
        assert len(locks) == 1 and f'"pid": {holder_pid}' in locks[0]
        os.kill(holder_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        others = [p for p in procs if p is not holder]
        outs = [p.communicate(timeout=120) for p in others]
        waited = time.monotonic() - killed_at
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert holder.wait(timeout=10) == -signal.SIGKILL
    for proc, (out, err) in zip(others, outs):
        assert proc.returncode == 0, err[-3000:]
    counter = _lines(workdir / "counter.txt")
    assert len(counter) == 2 and counter[0] == str(holder_pid)  # the killed holder, then one of the others
    states = sorted(re.search(r"once_counted: (\w+)", out).group(1) for out, _ in outs)
    assert states == ["Cached", "Cached", "Completed"]
    # the survivors waited for the expiry, the new holder's 3 s and their own finish; never the hour of lock_wait
    assert waited < expiry + 3 + 60


def test_serialize_on_locks_the_root_and_off_takes_no_lock(workdir):
    from dbnd_prefect.api.run import prepare_run
    from dbnd_prefect.engine.prefect_tasks import prefect_task_for
    from tests.test_backfill import bf_day

    on = prepare_run(bf_day, [])
    policy = prefect_task_for(bf_day, on.run).cache_policy
    assert policy.isolation_level == "SERIALIZABLE" and isinstance(policy.lock_manager, SignatureLocks)
    assert policy.lock_manager.lock_files_directory == (workdir / "data" / ".dbnd" / "locks").resolve()
    assert bf_day.prefect_task.cache_policy.lock_manager is None  # the definition's own task is left as it was
    off = prepare_run(bf_day, [{"run.serialize": "false"}])
    assert prefect_task_for(bf_day, off.run).cache_policy.isolation_level != "SERIALIZABLE"


def test_locks_expire_when_not_renewed_and_a_wait_is_bounded(tmp_path):
    locks = SignatureLocks(tmp_path / "locks", expiry=1.5, wait=0.5)
    assert locks.acquire_lock("k", "a")
    assert locks.is_lock_holder("k", "a") and not locks.is_lock_holder("k", "b")
    time.sleep(2.5)  # a live holder renews: still held after its expiry
    assert locks.is_lock_holder("k", "a")
    started = time.monotonic()
    with pytest.raises(LockWaitTimeout, match="waited 0.5 s for another run computing the same signature"):
        locks.acquire_lock("k", "b")
    assert 0.4 < time.monotonic() - started < 2
    # a holder that stops renewing (as a crashed process does) loses the lock once it expires
    locks.stop_renewing("k")
    other = SignatureLocks(tmp_path / "locks", expiry=1.5, wait=10)
    started = time.monotonic()
    assert other.acquire_lock("k", "b")
    assert time.monotonic() - started < 1.5 + 3
    assert other.is_lock_holder("k", "b") and not locks.is_lock_holder("k", "a")
    locks.release_lock("k", "a")  # no longer its lock: a no-op
    assert other.is_locked("k")
    other.release_lock("k", "b")
    assert not other.is_locked("k") and list((tmp_path / "locks").iterdir()) == []


def test_threads_taking_over_an_expired_lock_let_one_win(tmp_path):
    folder = tmp_path / "locks"
    folder.mkdir()
    (folder / "k.lock").write_text('{"holder": "dead", "expires": 0}')
    locks = SignatureLocks(folder, expiry=5, wait=0.3)
    won: list[str] = []
    timed_out: list[str] = []

    def take(name: str) -> None:
        try:
            if locks.acquire_lock("k", name):
                won.append(name)
        except LockWaitTimeout:
            timed_out.append(name)

    threads = [threading.Thread(target=take, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(timed_out) == 7
    assert locks.is_lock_holder("k", won[0])
    locks.release_lock("k", won[0])


def test_a_run_waits_for_a_live_holder_no_longer_than_lock_wait(workdir):
    from dbnd_prefect.api.run import execute, prepare_run
    from dbnd_prefect.errors import TaskFailedError
    from tests.test_backfill import bf_day

    prepared = prepare_run(bf_day, [{"run.lock_wait": "1", "bf_day.base": "41"}])
    other = SignatureLocks(workdir / "data" / ".dbnd" / "locks", expiry=30, wait=1)
    assert other.acquire_lock(prepared.root.record_key, "another process")  # held, and renewed, elsewhere
    try:
        started = time.monotonic()
        with pytest.raises(TaskFailedError, match=r"task 'bf_day' failed: LockWaitTimeout: waited 1 s for another "
                                                  r"run computing the same signature"):
            execute(prepared)
        assert time.monotonic() - started < 30
    finally:
        other.release_lock(prepared.root.record_key, "another process")
    assert execute(prepare_run(bf_day, [{"bf_day.base": "41"}])).values.endswith(":41")  # free again: it runs


# ----- S3 data roots (moto): the same locks as objects, made with conditional writes ----------------------

s3_calls: list[str] = []


@task
def once_s3(n: int = 1) -> int:
    s3_calls.append("ran")
    time.sleep(2)
    return n * 10


@pytest.mark.parametrize("store", ["s3", "gs", "az"])
def test_object_store_locks_expire_take_over_once_and_bound_the_wait(store, request):
    """Conditional writes on moto S3, fake-gcs-server and Azurite: one of six threads takes an expired lock."""
    from dbnd_prefect.engine.signature_locks import ObjectStoreLocks
    from dbnd_prefect.targets import register_storage_options

    bucket = request.getfixturevalue({"s3": "s3_bucket", "gs": "gcs_bucket", "az": "az_container"}[store])
    if store == "gs":  # the emulator takes no credentials
        register_storage_options("gs", {"token": "anon"})
        request.addfinalizer(lambda: register_storage_options("gs", {}))
    root = f"{store}://{bucket}/root/.dbnd/locks"
    dead = ObjectStoreLocks(root, expiry=1.5, wait=0.5)
    assert dead.acquire_lock("k", "dead")
    dead.stop_renewing("k")  # the holder stops renewing, as a crashed one does
    assert dead.is_lock_holder("k", "dead")
    with pytest.raises(LockWaitTimeout):
        ObjectStoreLocks(root, expiry=1.5, wait=0.3).acquire_lock("k", "x")
    time.sleep(1.6)
    managers = [ObjectStoreLocks(root, expiry=10, wait=1) for _ in range(3)]
    won, timed_out = [], []

    def take(i: int) -> None:
        try:
            if managers[i % 3].acquire_lock("k", f"t{i}"):
                won.append(i)
        except LockWaitTimeout:
            timed_out.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(timed_out) == 5
    winner = managers[won[0] % 3]
    assert winner.is_lock_holder("k", f"t{won[0]}")
    winner.release_lock("k", f"t{won[0]}")
    assert not winner.is_locked("k")
    winner.fs.invalidate_cache()
    assert winner.fs.find(winner.root) == []  # no lock or guard left


def test_runs_in_threads_on_an_s3_root_compute_one_signature_once(workdir, s3_bucket):
    from concurrent.futures import ThreadPoolExecutor

    from dbnd_prefect.api.run import run
    from dbnd_prefect.engine.prefect_tasks import prefect_task_for
    from dbnd_prefect.engine.signature_locks import ObjectStoreLocks

    s3_calls.clear()
    settings = {"run.data_root": f"s3://{s3_bucket}/root", "once_s3.n": "4"}
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run(once_s3, set=settings), range(4)))
    assert s3_calls == ["ran"]
    assert [r.values for r in results] == [40, 40, 40, 40]
    assert sorted(r.run.task_runs[0]["state"] for r in results) == ["Cached", "Cached", "Cached", "Completed"]
    policy = prefect_task_for(once_s3, results[0].run).cache_policy
    assert isinstance(policy.lock_manager, ObjectStoreLocks)
