"""A private Docker engine for tests of the Docker work pool, and an image that runs this Python install.

`docker_engine()` starts `dockerd` with its own data root, exec root and socket under a temporary folder, with
no bridge network and no iptables rules (the machine's networking is left alone), and stops it after: every
container goes with it and the folder is removed. No image can be pulled here, so `python_image()` builds one
with `docker import` from a root filesystem of a few folders; the Python install, this package and `/usr`
come in as read-only bind mounts (`python_mounts()`), at the same paths as on the host.

`scripts/install-docker.sh` installs the engine (Debian's docker.io). Where `dockerd` is missing or cannot
start (no root, no overlay support), `docker_engine()` skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


import dbnd_prefect

START_TIMEOUT = 60.0
INSTALL_HINT = "install it with: bash scripts/install-docker.sh"


@dataclass(frozen=True)
class Engine:
    """A running Docker engine: its `DOCKER_HOST` address and how long it took to answer."""

    host: str
    root: Path
    pid: int
    started_in: float

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.host, timeout=60)


def python_mounts() -> list[str]:
    """Read-only bind mounts (`src:src:ro`) that make this interpreter, its venv and this package run in a
    container: `/usr` (the C libraries), the base Python install, the venv and the package's source folder."""
    package_root = Path(dbnd_prefect.__file__).resolve().parent.parent
    paths = sorted({Path("/usr"), Path(sys.base_prefix).resolve(), Path(sys.prefix), package_root})
    outermost = [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]
    return [f"{p}:{p}:ro" for p in outermost]


def python_image(engine: Engine, tag: str = "dbnd-test-python:1") -> tuple[str, float]:
    """Import a small root filesystem as `tag`, with this venv first on PATH; returns (tag, seconds taken).

    The image holds only folders, the usual `/bin`, `/lib` links into `/usr` and a root user: run it with the
    `python_mounts()`.
    """
    started = time.monotonic()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("usr", "etc", "root", "proc", "sys", "dev", "run", "var", "tmp"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for name in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{name}"
            tar.addfile(info)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"), ("etc/group", "root:x:0:\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    repository, _, version = tag.partition(":")
    path = f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    client = engine.client()
    try:
        client.api.import_image_from_data(
            buffer.getvalue(), repository=repository, tag=version or "latest",
            changes=[f"ENV PATH={path}", "ENV HOME=/root", "ENV PYTHONDONTWRITEBYTECODE=1"])
        client.images.get(tag)  # raises if the import did not produce it
    finally:
        client.close()
    return tag, time.monotonic() - started


def _skip(reason: str) -> None:
    from tests.servers import engine_missing

    engine_missing(f"the Docker engine cannot start here: {reason}")


def _unmount_under(root: Path) -> None:
    """Unmount whatever the engine left mounted below `root` (deepest first), so the folder can be removed."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@contextlib.contextmanager
def docker_engine() -> Iterator[Engine]:
    """`dockerd` on a socket in a temporary folder until the context exits; skips the test if it cannot start."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        _skip(f"dockerd is not installed; {INSTALL_HINT}")
    if os.geteuid() != 0:
        _skip("dockerd needs root")
    root = Path(tempfile.mkdtemp(prefix="dbnd-dockerd-"))  # short: a unix socket path has at most 107 bytes
    host = f"unix://{root}/docker.sock"
    log_path = root / "dockerd.log"
    argv = [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
            "--ip-masq=false", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"), "-H", host]
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        engine = Engine(host, root, proc.pid, 0.0)
        deadline = started + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                _skip(f"dockerd exited with {proc.returncode}: {' | '.join(tail)}")
            with contextlib.suppress(Exception):
                client = engine.client()
                try:
                    if client.ping():
                        break
                finally:
                    client.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT:.0f} s; log:\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield Engine(host, root, proc.pid, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # dockerd stops its containers and its containerd
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
