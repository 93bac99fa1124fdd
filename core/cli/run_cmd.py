"""`quorum run`: migrate, seed an empty database, then serve the app on one port."""

from __future__ import annotations

import os
import subprocess
import sys
from argparse import Namespace

from core import db, demo, migrate
from core.cli import Commands
from core.settings import PROJECT_ROOT, reset_settings, settings


def register(commands: Commands) -> None:
    run = commands.add_parser(
        "run",
        help="Start the dashboard and gateway (migrates and seeds an empty database first).",
        description="Apply migrations, seed demo data into an empty database when in demo mode, "
        "and serve the dashboard and the HTTP gateway with Streamlit on one port.",
    )
    run.add_argument(
        "--demo", action="store_true", help="Demo mode: demo sign-in, demo data and the built-in model simulator."
    )
    run.add_argument("--port", type=int, default=8501, help="Port to listen on (default 8501).")
    run.add_argument("--host", default="localhost", help="Address to bind (default localhost).")
    run.set_defaults(func=_run)


def _run(args: Namespace) -> int:
    if args.demo:
        os.environ["QUORUM_DEMO"] = "1"
        reset_settings()
    settings().check_safe()
    migrate.upgrade()
    if settings().demo_mode:
        with db.session_scope(write=True) as session:
            if demo.is_empty(session):
                counts = demo.seed(session)
                print("demo data seeded: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    db.dispose_engines()
    return subprocess.call(_streamlit_command(port=args.port, host=args.host), cwd=PROJECT_ROOT)


def _streamlit_command(*, port: int, host: str) -> list[str]:
    command = [
        # Streamlit's own command line, with Nagle's algorithm off on its socket (see pages.ui.server).
        sys.executable,
        "-m",
        "pages.ui.server",
        "run",
        str(PROJECT_ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    if os.environ.get("QUORUM_SECRETS_FILE"):
        # st.login reads [auth] from Streamlit's own secrets files; point it at the same file.
        command += ["--secrets.files", os.environ["QUORUM_SECRETS_FILE"]]
    return command
