"""minilake (a local Databricks API emulator, PyPI `minilake`) over HTTPS on 127.0.0.1, for the Databricks job tests.

Run as `python -m tests.minilake_server PORT CERT KEY`. Two things differ from `minilake --tls`, both to let
prefect-databricks talk to it unchanged: HTTPS only, on the given port (prefect-databricks always builds
`https://{databricks_instance}/api/`), with a self-signed certificate for 127.0.0.1 the client is told to
trust; and the Jobs API answered at version 2.1 (what prefect-databricks calls) as well as 2.2 (the only one
minilake serves; Databricks itself serves both, with the same runs/submit, runs/get and runs/get-output).
Jobs run as local subprocesses (`MINILAKE_JOB_EXECUTOR=subprocess`, set by the caller): no Docker, no Spark.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class JobsApi21:
    """ASGI wrapper: a request to /api/2.1/jobs/... is served by minilake's /api/2.2/jobs/... routes."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/2.1/jobs/"):
            path = "/api/2.2/jobs/" + scope["path"].removeprefix("/api/2.1/jobs/")
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


def main(port: int, cert: Path, key: Path) -> None:
    import uvicorn
    from minilake.app import create_app
    from minilake.tls import generate_self_signed

    if not cert.exists():
        generate_self_signed(cert, key, ["127.0.0.1", "localhost"])
    uvicorn.run(JobsApi21(create_app()), host="127.0.0.1", port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
                http="h11", log_level="warning", access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
