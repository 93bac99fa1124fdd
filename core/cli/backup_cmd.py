"""`quorum backup ...`: back the database up, restore it, and prove a backup restores (the drill)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from core.cli import CLI_ACTOR, Commands
from core.ops import backup, restore


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "backup",
        help="Back up, restore and verify the whole database.",
        description="Back up the whole database into one file with a manifest (schema revision, row counts, "
        "audit head and newest checkpoint), restore it into an empty database, or verify that it restores.",
    )
    sub = parser.add_subparsers(title="backup commands", metavar="COMMAND", required=True)

    create = sub.add_parser(
        "create",
        help="Write a backup of the database to FILE (safe while the gateway serves calls).",
        description="SQLite: the online backup API; PostgreSQL: pg_dump (custom format) from one snapshot. "
        "The manifest is read from the same snapshot and signed with QUORUM_AUDIT_SIGNING_KEY when set.",
    )
    create.add_argument("file", metavar="FILE", type=Path, help="The backup file to write (a tar archive).")
    create.set_defaults(func=_create)

    restore_cmd = sub.add_parser(
        "restore",
        help="Restore FILE into the configured database, which must be empty.",
        description="Restore a backup into DATABASE_URL. Refuses a database that holds any row: restore into "
        "a new one, then point Quorum at it.",
    )
    restore_cmd.add_argument("file", metavar="FILE", type=Path, help="The backup file to restore.")
    restore_cmd.set_defaults(func=_restore)

    verify = sub.add_parser(
        "verify",
        help="Restore FILE into a scratch database and verify it (the restore drill).",
        description="Check the dump against the manifest's sha256 and signature, restore it into a scratch "
        "database (a temporary SQLite file, or a PostgreSQL database created and dropped on DATABASE_URL's "
        "server), compare row counts, spend and audit head with the manifest, and verify the audit chain "
        "against the checkpoint file. Exits 1 on any finding.",
    )
    verify.add_argument("file", metavar="FILE", type=Path, help="The backup file to verify.")
    verify.add_argument(
        "--checkpoints",
        type=Path,
        help="The audit checkpoint file to verify against (default: the one in QUORUM_AUDIT_CHECKPOINT_DIR).",
    )
    verify.set_defaults(func=_verify)


def _create(args: Namespace) -> int:
    manifest = backup.create_backup(actor=CLI_ACTOR, path=args.file)
    print(f"backup written to {args.file}: {manifest.summary()}")
    return 0


def _restore(args: Namespace) -> int:
    manifest = restore.restore_backup(actor=CLI_ACTOR, path=args.file)
    print(f"restored {args.file}: {manifest.summary()}")
    return 0


def _verify(args: Namespace) -> int:
    report = restore.verify_backup(actor=CLI_ACTOR, path=args.file, checkpoint_file=args.checkpoints)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.ok and report.manifest is not None:
        print(f"backup verified: {report.manifest.summary()}; {report.events} audit events verified")
        return 0
    for problem in report.problems:
        print(problem)
    print(f"{len(report.problems)} problem(s): the backup does not restore what it claims", file=sys.stderr)
    return 1
