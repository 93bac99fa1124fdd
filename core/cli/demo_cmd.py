"""`quorum demo seed`: demo teams, people and feature data."""

from __future__ import annotations

from argparse import Namespace

from core import db, demo, migrate
from core.cli import Commands


def register(commands: Commands) -> None:
    parser = commands.add_parser("demo", help="Demo data commands.", description="Demo data commands.")
    sub = parser.add_subparsers(title="demo commands", metavar="COMMAND", required=True)
    seed = sub.add_parser(
        "seed",
        help="Fill an empty database with demo teams, people and data.",
        description="Fill an empty database with demo data. Refuses a database that already "
        "has people unless --reset is given (which needs QUORUM_DEMO=1).",
    )
    seed.add_argument("--reset", action="store_true", help="Wipe every table first (demo mode only).")
    seed.set_defaults(func=_seed)


def _seed(args: Namespace) -> int:
    migrate.upgrade()
    with db.session_scope(write=True) as session:
        counts = demo.seed(session, reset=args.reset)
    print("seeded " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0
