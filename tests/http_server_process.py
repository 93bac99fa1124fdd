"""Quorum's HTTP routes alone, served by uvicorn in a process of its own.

``python -m tests.http_server_process PORT``: the settings (DATABASE_URL above all) come
from the environment, so several such processes share one database, as gateway
processes behind a load balancer do.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette

from core.http.routes import http_middleware, http_routes


def main() -> None:
    uvicorn.run(
        Starlette(routes=http_routes(), middleware=http_middleware()),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        lifespan="off",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
