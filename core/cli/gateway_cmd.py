"""`quorum gateway serve`: the gateway's HTTP routes without the dashboard, in N processes."""

from __future__ import annotations

from argparse import Namespace

from core.cli import Commands
from core.http.gateway_server import serve

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def register(commands: Commands) -> None:
    gateway = commands.add_parser(
        "gateway",
        help="The gateway's HTTP API on its own (for scale-out).",
        description="Serve the gateway's HTTP routes without the dashboard.",
    )
    actions = gateway.add_subparsers(title="actions", metavar="ACTION", required=True)
    run = actions.add_parser(
        "serve",
        help="Serve /healthz and /v1/* in N processes until SIGTERM.",
        description="Apply migrations once, then serve the gateway's HTTP routes (the same as `quorum run` "
        "serves beside the dashboard) in N processes sharing one port and the configured database. "
        "Run it on as many hosts as needed behind a load balancer, over one PostgreSQL. SIGTERM stops "
        "accepting connections, finishes the calls in flight and exits.",
    )
    run.add_argument("--workers", type=int, default=1, help="Processes on this host (default 1; about one per core).")
    run.add_argument(
        "--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1; 0.0.0.0 behind a load balancer)."
    )
    run.add_argument("--port", type=int, default=8000, help="Port to listen on (default 8000).")
    run.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="Server log level (default warning).")
    run.set_defaults(func=_serve)


def _serve(args: Namespace) -> int:
    serve(host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return 0
