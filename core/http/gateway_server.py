"""`quorum gateway serve`: the gateway's HTTP routes without the dashboard, in N processes.

The same routes as `quorum run` serves beside the pages (`core.http.routes`: /healthz, /v1/*,
feedback), for applications' traffic only. One process is bound by its GIL, so a host runs
several: the parent binds the port once, brings the schema up to date once, and then uvicorn's
supervisor starts ``workers`` processes that accept on that one socket (the kernel spreads
the connections) and replaces one that dies. Everything a call decides on (budgets, the audit
chain, the call log) is in the database, so processes here and on other hosts behind a load
balancer stay exact together; a process keeps only short-lived caches (policies, prices).

SIGTERM (or Ctrl-C): the processes stop accepting, finish the calls in flight, and exit 0.

uvicorn is the server because it already is one of Quorum's (Streamlit serves `quorum run`
through it) and its supervisor does what N processes need: one socket bound once, a worker
replaced when it dies, graceful shutdown; another server would be a second dependency.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors.multiprocess import Multiprocess

from core import db, migrate
from core.errors import ValidationError
from core.http.bounded_head import BoundedHeadProtocol
from core.http.routes import http_middleware, http_routes, start_moderation_probe
from core.ops import logs, metrics
from core.settings import settings

MAX_PORT = 65535
# Connections waiting to be accepted; load balancers open many at once after a deploy.
BACKLOG = 2048
WORKER_HEALTHCHECK_S = 30


@asynccontextmanager
async def worker_lifespan(_app: object) -> AsyncIterator[dict[str, object]]:
    """A worker's start. The schema is the parent's to migrate, once. No sign-in settings are
    checked: this server has no pages and no sign-in (team keys only), so a gateway host needs
    no OIDC client secret, and is better without one."""
    logs.configure()
    start_moderation_probe()
    yield {}


def gateway_app() -> Starlette:
    """The ASGI app of one gateway process (uvicorn builds it in each worker: a factory)."""
    return Starlette(routes=http_routes(), middleware=http_middleware(), lifespan=worker_lifespan)


def check_options(*, host: str, port: int, workers: int) -> None:
    """Refuse what cannot be served, before anything is started."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError(f"--workers must be a whole number of at least 1 (got {workers!r})")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= MAX_PORT:
        raise ValidationError(f"--port must be between 1 and {MAX_PORT} (got {port!r})")
    if not host or not host.strip():
        raise ValidationError("--host must name an address to listen on (e.g. 127.0.0.1 or 0.0.0.0)")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port or unknown host is one clear error.

    Created as a TCP socket with Nagle's algorithm off: accepted connections inherit it, and
    without it an answer on a kept-alive connection waits for the client's delayed ACK
    (see pages.ui.server for the same fix on `quorum run`'s socket)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ValidationError(f"--host {host!r} is not an address this machine can listen on ({error})") from None
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ValidationError(f"Cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def serve(*, host: str, port: int, workers: int, log_level: str = "warning") -> None:
    """Serve the gateway until SIGTERM or Ctrl-C (blocks)."""
    check_options(host=host, port=port, workers=workers)
    sock = bind(host, port)
    try:
        migrate.upgrade()  # once, here: the workers would otherwise race to do it
        if workers > 1:
            metrics.prepare_multiprocess()  # /metrics sums every worker's counts
        db.dispose_engines()  # no pooled connection is handed to the workers
        config = uvicorn.Config(
            "core.http.gateway_server:gateway_app",
            factory=True,
            host=host,
            port=sock.getsockname()[1],
            workers=workers,
            # Quorum decides whom to believe about the client's address (core.http.client_address).
            proxy_headers=False,
            # httptools, with a bound on a request's headers (core.http.bounded_head).
            http=BoundedHeadProtocol,
            # Every call is in the call log already; a line per request would only cost CPU.
            access_log=False,
            log_level=log_level,
            # With JSON logs, uvicorn's own lines go through the same JSON handler (core.ops.logs).
            log_config=None if settings().log_format == "json" else uvicorn.config.LOGGING_CONFIG,
            backlog=BACKLOG,
            # The worker's lifespan must run (it starts the moderation probe), and fail loudly.
            lifespan="on",
            # The supervisor replaces a worker that does not answer its ping in time; starting one
            # (imports, the first connection) takes seconds on a busy host, and killing it then
            # would only start the same wait again.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        )
        database = "SQLite" if settings().is_sqlite else "PostgreSQL"
        print(
            f"Quorum gateway: {workers} process{'es' if workers > 1 else ''} serving "
            f"http://{host}:{sock.getsockname()[1]}/v1 over {database} (pid {os.getpid()})",
            file=sys.stderr,
            flush=True,
        )
        if workers == 1:
            # uvicorn shuts down gracefully on SIGTERM, then raises it again under the handler
            # it found: this one, so that a stop asked for ends as a clean exit (0), as with workers.
            previous = signal.signal(signal.SIGTERM, lambda _signal, _frame: None)
            try:
                uvicorn.Server(config).run(sockets=[sock])
            finally:
                signal.signal(signal.SIGTERM, previous)
        else:
            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
