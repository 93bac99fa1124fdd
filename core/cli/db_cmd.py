"""`quorum db ...`: schema migrations."""

from __future__ import annotations

from argparse import Namespace

from core import migrate
from core.cli import Commands


def register(commands: Commands) -> None:
    db = commands.add_parser("db", help="Database schema commands.", description="Database schema commands.")
    sub = db.add_subparsers(title="db commands", metavar="COMMAND", required=True)
    upgrade = sub.add_parser(
        "upgrade",
        help="Apply every pending migration (safe to run repeatedly).",
        description="Apply every pending migration to the database named by DATABASE_URL "
        "(default: the SQLite file data/quorum.db).",
    )
    upgrade.set_defaults(func=_upgrade)


def _upgrade(_args: Namespace) -> int:
    migrate.upgrade()
    print(f"database at revision {migrate.current_revision()}")
    return 0
