"""The emulator fixtures of tests/servers.py: they fail loudly when a server cannot start and leave no process
behind, even when a test fails or pytest itself is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests import servers


def test_missing_emulator_fails_loudly_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(servers, "NODE_DIR", tmp_path / "no-node")
    with pytest.raises(pytest.fail.Exception, match=r"azurite-blob not found.*install-emulators\.sh"):
        with servers.azurite():
            pass


def test_server_that_exits_at_start_fails_loudly_with_its_output() -> None:
    argv = [sys.executable, "-c", "import sys; print('port already taken'); sys.exit(3)"]
    with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with code 3.*port already taken"):
        with servers.server_process("Example", argv, "/", servers.free_port()):
            pass


def test_server_process_is_gone_after_a_failing_test() -> None:
    with pytest.raises(RuntimeError):
        with servers.fake_gcs() as server:
            pid = server.pid
            raise RuntimeError("the test failed")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_server_dies_with_a_killed_test_process() -> None:
    # pytest killed outright runs no teardown; the kernel must still end its servers
    script = "import time; from tests import servers\nwith servers.fake_gcs() as s:\n print(s.pid, flush=True); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=servers.ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        os.kill(pid, 0)  # running
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    pytest.fail(f"fake-gcs-server (pid {pid}) outlived the killed test process")
