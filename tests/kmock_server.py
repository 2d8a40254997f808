"""A Kubernetes API emulator (PyPI `kmock`) as a server process on 127.0.0.1, for tests of the Kubernetes pool.

kmock keeps objects in memory and serves them over the Kubernetes REST API (create, list, read, patch Jobs
with the official clients); it runs no pods. Its console script only fetches resource lists, so this file
is also the server's entry point: `python tests/kmock_server.py PORT` serves until SIGTERM.

`kmock_cluster()` starts that process on a free port and yields a kubeconfig for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Cluster:
    """A running emulator: its API URL and a kubeconfig (dict and file) whose current context points at it."""

    url: str
    kubeconfig: dict
    kubeconfig_path: Path


def kubeconfig_for(url: str) -> dict:
    """A kubeconfig with one cluster, one user (a placeholder token kmock accepts) and one current context."""
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "kmock", "user": {"token": "kmock-test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
    }


@contextlib.contextmanager
def kmock_cluster(workdir: Path) -> Iterator[Cluster]:
    """kmock on a free 127.0.0.1 port until the context exits (fails loudly if it cannot start)."""
    from tests.servers import free_port, server_process

    port = free_port()
    argv = [sys.executable, str(Path(__file__).resolve()), str(port)]
    with server_process("Kubernetes API (kmock)", argv, "/api", port) as server:
        config = kubeconfig_for(server.url)
        path = workdir / "kubeconfig.json"  # kubeconfig is YAML, and YAML is a superset of JSON
        path.write_text(json.dumps(config))
        yield Cluster(server.url, config, path)


async def _serve(port: int) -> None:
    from kmock import KubernetesEmulator, Server

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with KubernetesEmulator() as emulator, Server(emulator, host="127.0.0.1", port=port):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
