"""`dbnd server status|start|stop`: the local Prefect server that dbnd runs share."""

from __future__ import annotations


def server_command(action: str) -> int:
    """Print the state of PREFECT_HOME's background server after `action`; the exit code."""
    from dbnd_prefect.runtime import local_server

    if action == "start":
        url = local_server.ensure_running(announce=False)
        print(f"running: API {url}, UI {url[:-len('/api')]} (PREFECT_HOME {local_server.prefect_home()})")
        return 0
    if action == "stop":
        found = local_server.stop()
        if found.state == "running":
            print(f"stopped the server at {found.url} (pid {found.pid})")
        elif found.state == "stale":
            print(f"removed a stale server record ({found.reason})")
        else:
            print(f"no local server was running (PREFECT_HOME {found.home})")
        return 0
    found = local_server.status()
    if found.state == "running":
        print(f"running: API {found.url}, UI {found.ui_url}, pid {found.pid} (PREFECT_HOME {found.home})")
    elif found.state == "stale":
        print(f"stale: {found.reason}; the next run replaces it (PREFECT_HOME {found.home})")
    else:
        print(f"stopped: the next run starts one (PREFECT_HOME {found.home})")
    return 0
