"""A Spark Connect server on this machine, from the pyspark package itself (for development and tests).

`start_connect_server(port)` runs `spark-submit --class ...SparkConnectServer` in the foreground as a child
process bound to 127.0.0.1 (what `sbin/start-connect-server.sh --wait` runs), so its owner can stop it by
its process id; `wait_until_serving` waits for the port. A profile then names it:
`[env.NAME.spark] engine = "connect"`, `remote = "sc://127.0.0.1:PORT"`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import IO


def spark_home() -> Path:
    """The Spark distribution inside the installed pyspark package."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def start_connect_server(port: int, master: str = "local[1]", log: IO | None = None,
                         conf: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a Spark Connect server on 127.0.0.1:`port` running on `master`; returns its process (not waited for)."""
    from dbnd_prefect.spark.engine import _log4j_file

    home = spark_home()
    settings = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        **(conf or {}),
    }
    command = [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
               "--name", "Spark Connect server", "--master", master,
               "--driver-java-options", f"-Dlog4j.configurationFile={_log4j_file()}"]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_CONNECT_MODE": "0", "SPARK_LOCAL_IP": "127.0.0.1"}
    return subprocess.Popen(command, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def wait_until_serving(process: subprocess.Popen, port: int, timeout: float = 180) -> None:
    """Return once the server accepts connections on 127.0.0.1:`port`; RuntimeError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Spark Connect server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the Spark Connect server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def stop_connect_server(process: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server started by `start_connect_server` (and the JVM it runs), by its process group."""
    import signal

    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
