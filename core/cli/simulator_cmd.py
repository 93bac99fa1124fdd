"""`quorum simulator serve`: the built-in OpenAI simulator over HTTP, in its own process."""

from __future__ import annotations

from argparse import Namespace

from core.cli import Commands
from core.simulator import SimulatorConfig
from core.simulator.server import serve


def register(commands: Commands) -> None:
    simulator = commands.add_parser(
        "simulator",
        help="The built-in OpenAI API simulator.",
        description="Serve the OpenAI API simulator (no network, no key) for demos, tests and benchmarks.",
    )
    actions = simulator.add_subparsers(title="actions", metavar="ACTION", required=True)
    run = actions.add_parser(
        "serve",
        help="Serve the simulator over HTTP until interrupted.",
        description="Serve the simulator; point an OpenAI client at http://HOST:PORT/v1 with any key.",
    )
    run.add_argument("--host", default="127.0.0.1", help="Address to bind (default 127.0.0.1).")
    run.add_argument("--port", type=int, default=8800, help="Port to listen on (default 8800).")
    run.add_argument("--latency-ms", type=float, default=0.0, help="Added latency per reply in ms (default 0).")
    run.add_argument("--log-level", default="warning", help="uvicorn log level (default warning).")
    run.set_defaults(func=_serve)


def _serve(args: Namespace) -> int:
    serve(args.host, args.port, SimulatorConfig(latency_ms=args.latency_ms), log_level=args.log_level)
    return 0
