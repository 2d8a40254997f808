"""`dbnd server status|start|stop`: the local Prefect server that dbnd runs share."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbnd_prefect.runtime.local_server import ServerStatus


def server_command(action: str) -> int:
    """Print the state of PREFECT_HOME's background server after `action`; the exit code."""
    from dbnd_prefect.runtime import local_server

    if action == "start":
        local_server.ensure_running(announce=False)
        found = local_server.status()
        print(f"running: API {found.url}, UI {found.ui_url}, pid {found.pid} (PREFECT_HOME {found.home})")
        _details(found)
        return 0
    if action == "stop":
        found = local_server.stop()
        if found.state in ("running", "unresponsive"):
            print(f"stopped the server at {found.url} (pid {found.pid}); log {found.log}")
        elif found.state == "stale":
            print(f"removed a stale server record ({found.reason})")
        else:
            print(f"no local server was running (PREFECT_HOME {found.home})")
        return 0
    found = local_server.status()
    if found.state == "running":
        print(f"running: API {found.url}, UI {found.ui_url}, pid {found.pid} (PREFECT_HOME {found.home})")
        changed = local_server.database_change(found)
        if changed:
            print(f"note: {changed}")
    elif found.state == "unresponsive":
        print(f"not answering: {found.reason} (PREFECT_HOME {found.home}); runs wait up to "
              f"{local_server.wait_seconds():.0f} s for it and never stop it; `dbnd server stop` stops it")
    elif found.state == "stale":
        print(f"stale: {found.reason}; the next run replaces it (PREFECT_HOME {found.home})")
    else:
        print(f"stopped: the next run starts one (PREFECT_HOME {found.home})")
    _details(found)
    if found.state == "stale" and found.pid is not None and found.reason == "its process is gone":
        lines = local_server.last_log_lines(found.home)
        if lines:
            print(f"last lines of {found.log}:")
            print("\n".join(f"  {line}" for line in lines))
    return 0


def _details(found: ServerStatus) -> None:
    if found.database:
        print(f"database: {found.database}")
    if found.log.exists():
        print(f"log: {found.log}")
