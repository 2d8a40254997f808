"""docs/operations.md, "Deployments and workers, by copy-paste" (and the README's "Deploying", the same lines):
its prefect.yaml and its shell lines, run verbatim.

The project gets the documented `prefect.yaml` (with its folder in place of /path/to/my-project), the chain of
tests/test_local_server.py and a data root; the environment is a user's with no PREFECT_API_URL and a
PREFECT_HOME of its own. After `dbnd server start` (the documented precondition) each line of the bash block
runs as written; the one "in another terminal" runs in the background until the test ends.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_local_server import CHAIN, DBND, _alive, _processes_of

DOC = REPO / "docs" / "operations.md"
SECTION = "## Deployments and workers, by copy-paste"
PLACEHOLDER = "/path/to/my-project"
VENV_BIN = str(Path(sys.executable).parent)


def documented_steps() -> tuple[str, list[str]]:
    """The section's `yaml` block and the lines of its `bash` block, exactly as written."""
    text = DOC.read_text()
    assert SECTION in text, f"{DOC} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    blocks = {lang: body for lang, body in re.findall(r"^```(\w+)\n(.*?)^```", section, flags=re.M | re.S)}
    assert "yaml" in blocks, f"{DOC}, {SECTION!r}: no ```yaml block (the prefect.yaml)"
    assert "bash" in blocks, f"{DOC}, {SECTION!r}: no ```bash block (the commands)"
    assert PLACEHOLDER in blocks["yaml"], f"the prefect.yaml no longer has {PLACEHOLDER!r} to replace"
    lines = [line.strip() for line in blocks["bash"].splitlines() if line.strip()]
    assert lines, f"{DOC}, {SECTION!r}: the ```bash block is empty"
    return blocks["yaml"], lines


def test_the_readme_shows_the_same_deployment_commands():
    """The README's "Deploying" section: the same commands, so the run below tests them too."""
    readme = (REPO / "README.md").read_text()
    assert "## Deploying" in readme
    section = re.split(r"^## ", readme.split("## Deploying", 1)[1], maxsplit=1, flags=re.M)[0]
    block = re.search(r"^```bash\n(.*?)^```", section, flags=re.M | re.S)
    assert block, "README.md, Deploying: no ```bash block"
    assert [line.strip() for line in block.group(1).splitlines() if line.strip()] == documented_steps()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the background command's session (it and the flow runs it started), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever else is left in its session
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture
def user(tmp_path: Path):
    """The project folder, its PREFECT_HOME and the environment of a user with no Prefect server set."""
    folder = tmp_path / "my-project"
    folder.mkdir()
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(REPO),
               PATH=os.pathsep.join([VENV_BIN, env.get("PATH", "")]))
    yield folder, home, env
    server_pid = None
    state = home / "dbnd-server.json"
    if state.exists():
        server_pid = json.loads(state.read_text()).get("pid")
    if state.exists() or (home / "server.pid").exists():
        subprocess.run([DBND, "server", "stop"], cwd=folder, env=env, capture_output=True, timeout=60)
    pid_file = home / "server.pid"
    if pid_file.exists():  # a failed stop must not leave a server behind
        try:
            server_pid = server_pid or int(pid_file.read_text())
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    if server_pid is not None:
        deadline = time.monotonic() + 15
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server_pid), f"the local server (pid {server_pid}) is still running"


@pytest.mark.slow
def test_the_documented_deployment_steps_run_as_written(user):
    folder, home, env = user
    prefect_yaml, lines = documented_steps()
    (folder / "prefect.yaml").write_text(prefect_yaml.replace(PLACEHOLDER, str(folder)))
    (folder / "chain.py").write_text(CHAIN)
    (folder / "dbnd.toml").write_text('[run]\ndata_root = "data"\n')

    started = subprocess.run([DBND, "server", "start"], cwd=folder, env=env, capture_output=True, text=True,
                             timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    server_pid = json.loads((home / "dbnd-server.json").read_text())["pid"]

    background: list[tuple[subprocess.Popen, Path]] = []
    outputs: dict[str, str] = {}
    try:
        for line in lines:
            command, _, comment = line.partition("#")
            args = shlex.split(command)
            assert args, f"a documented line with no command: {line!r}"
            executable = shutil.which(args[0], path=env["PATH"])
            assert executable, f"{args[0]!r} of {line!r} is not on PATH"
            args[0] = executable
            if "another terminal" in comment:
                log = folder.parent / f"background-{len(background)}.log"
                with log.open("w") as out:
                    proc = subprocess.Popen(args, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                background.append((proc, log))
                time.sleep(1)
                assert proc.poll() is None, f"{line!r} exited with {proc.returncode}:\n{log.read_text()}"
                continue
            done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
            outputs[command.strip()] = done.stdout + done.stderr
            assert done.returncode == 0, (
                f"{line!r} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
                + "".join(f"\n--- {log.name}:\n{log.read_text()[-5000:]}" for _, log in background))

        assert background, "no documented line runs 'in another terminal' (the worker)"
        watched = [out for command, out in outputs.items() if "deployment run" in command and "--watch" in command]
        assert watched, "no documented `prefect deployment run ... --watch` line"
        assert "Flow run finished successfully in 'Completed'" in " ".join(watched[-1].split()), watched[-1]

        listing = (f"project files: {sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))}\n"
                   f"{watched[-1]}\n--- worker:\n{background[0][1].read_text()[-8000:]}")
        manifests = sorted((folder / "data").rglob("*manifest.json"))
        assert len(manifests) == 2, f"not one manifest per `inc` (n: 2) under {folder / 'data'}\n{listing}"
        assert all(m.parent.name.startswith("inc_") and len(list(m.parent.iterdir())) > 1 for m in manifests), listing
        flow_run = re.search(r"UUID: ([0-9a-f-]{36})", watched[-1])
        assert flow_run, watched[-1]
        assert (folder / "data" / ".dbnd" / "runs" / f"{flow_run.group(1)}.json").exists(), listing
    finally:
        for proc, _ in background:
            _stop_group(proc)
        stopped = subprocess.run([DBND, "server", "stop"], cwd=folder, env=env, capture_output=True, text=True,
                                 timeout=60)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for proc, log in background:
        assert proc.returncode is not None, f"the background command is still running:\n{log.read_text()}"
    deadline = time.monotonic() + 15
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server_pid), f"the local server (pid {server_pid}) is still running after `dbnd server stop`"
    left = {pid: _cmdline(pid) for pid in _processes_of(home)}
    assert not left, f"still running with this PREFECT_HOME: {left}"
