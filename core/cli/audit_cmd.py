"""`quorum audit ...`: verify the tamper-evident audit log, sign checkpoints, export events."""

from __future__ import annotations

import argparse
import sys
from argparse import Namespace

from core import db, exports
from core.audit import checkpoints as audit_checkpoints
from core.audit import export as audit_export
from core.audit import query as audit_query
from core.audit import verify as audit_verify
from core.cli import CLI_ACTOR, Commands


def register(commands: Commands) -> None:
    audit = commands.add_parser(
        "audit",
        help="Verify, checkpoint and export the audit log.",
        description="Verify, checkpoint and export the tamper-evident audit log.",
    )
    sub = audit.add_subparsers(title="audit commands", metavar="COMMAND", required=True)

    verify = sub.add_parser(
        "verify",
        help="Check every link of the audit chain and every signed checkpoint.",
        description="Check every event's hash, every link and every signed checkpoint. Exits 0 with "
        "'N events verified, last checkpoint at S', or 1 with one line per problem naming the sequence number.",
    )
    verify.add_argument(
        "--no-checkpoint", action="store_true", help="Do not sign a verified checkpoint of the head afterwards."
    )
    verify.add_argument(
        "--incremental",
        action="store_true",
        help="Read only the events after the newest verified checkpoint (see the README for what it does not "
        "check); without it every event is read.",
    )
    verify.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="Ranges of the chain checked in parallel (default: one per core); 1 walks the chain serially.",
    )
    verify.set_defaults(func=_verify)

    checkpoint = sub.add_parser(
        "checkpoint",
        help="Sign a checkpoint of the chain's current head.",
        description="Sign (sequence, head hash, time) with QUORUM_AUDIT_SIGNING_KEY; written to the database and "
        "appended to the file in QUORUM_AUDIT_CHECKPOINT_DIR.",
    )
    checkpoint.set_defaults(func=_checkpoint)

    keygen = sub.add_parser(
        "keygen",
        help="Print a new Ed25519 signing key and its public key.",
        description="Print a new Ed25519 key pair as hex: put the private key in "
        "QUORUM_AUDIT_SIGNING_KEY and publish the public key (QUORUM_AUDIT_PUBLIC_KEY).",
    )
    keygen.set_defaults(func=_keygen)

    export = sub.add_parser(
        "export",
        help="Export the filtered audit log as CSV or JSON Lines.",
        description="Export exactly the events the filters select, oldest first, with UTC times "
        "and event ids (for de-duplication), e.g. to ship to a SIEM.",
    )
    export.add_argument("--format", choices=audit_export.FORMATS, default="jsonl", help="csv or jsonl (default jsonl).")
    export.add_argument("--output", help="File to write (default: standard output).")
    add_filter_arguments(export)
    export.set_defaults(func=_export)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", help="Actor id (person:12, system:cli) or a person's e-mail or name.")
    parser.add_argument(
        "--action",
        help="Action terms: 'budget.' is a prefix, '-team.' excludes (write "
        "--action=-team.), 'team.create' is exact; separate with commas.",
    )
    parser.add_argument("--target-type", help="Target type, e.g. team or person.")
    parser.add_argument("--target-id", help="Target id (with --target-type).")
    parser.add_argument("--team", type=int, help="Team id.")
    parser.add_argument("--since", help="From this UTC time, inclusive (2026-03-01 or 2026-03-01T14:30).")
    parser.add_argument("--until", help="Until this UTC time, exclusive.")
    parser.add_argument("--text", help="Free text searched in the before/after details.")


def filters_from(args: Namespace) -> audit_query.AuditFilter:
    return audit_query.AuditFilter(
        actor=args.actor,
        action=args.action,
        target_type=args.target_type,
        target_id=args.target_id,
        team_id=args.team,
        since=audit_query.parse_time(args.since, field="--since"),
        until=audit_query.parse_time(args.until, field="--until"),
        text=args.text,
    )


def _workers(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return int(value)


def _verify(args: Namespace) -> int:
    with db.session_scope() as session:
        result = audit_verify.verify_chain(
            session=session,
            actor=CLI_ACTOR,
            checkpoint=not args.no_checkpoint,
            workers=args.workers,
            incremental=args.incremental,
        )
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.ok:
        print(result.summary())
        return 0
    for line in result.lines():
        print(line)
    print(f"{len(result.problems) + result.dropped_problems} problem(s) in {result.events} events", file=sys.stderr)
    return 1


def _checkpoint(_args: Namespace) -> int:
    with db.session_scope(write=True) as session:
        made = audit_checkpoints.create_checkpoint(session=session, actor=CLI_ACTOR)
    print(
        f"checkpoint at seq {made.seq} ({made.head_hash[:16]}...) signed with key {made.key_id}, "
        f"appended to {audit_checkpoints.checkpoint_file()}"
    )
    return 0


def _keygen(_args: Namespace) -> int:
    private, public = audit_checkpoints.new_key_pair()
    print(f"QUORUM_AUDIT_SIGNING_KEY={private}")
    print(f"QUORUM_AUDIT_PUBLIC_KEY={public}")
    return 0


def _export(args: Namespace) -> int:
    filters = filters_from(args)
    with db.session_scope() as session:
        export = audit_export.prepare(session=session, actor=CLI_ACTOR, filters=filters, fmt=args.format)
        if args.output:
            progress = exports.TerminalProgress("events")
            count = exports.write_file(export, args.output, progress=progress)
            progress.done()
            print(f"exported {count} events to {args.output}", file=sys.stderr)
        else:
            sys.stdout.flush()
            exports.write_stream(export, sys.stdout.buffer)
    return 0
