"""`quorum spend export` and `quorum calls export`: the spend ledger and the call log as files.

Both stream (core.exports): a file of any size is written in constant memory, with a
progress line on a terminal, and appears under its name only once complete.
"""

from __future__ import annotations

import argparse
import sys
from argparse import Namespace
from datetime import UTC, datetime

from sqlmodel import Session

from core import db, exports
from core.audit.query import parse_time
from core.budgets import ledger_export, periods
from core.cli import CLI_ACTOR, Commands
from core.errors import ValidationError
from core.gateway import call_export
from core.identity import people as identity


def register(commands: Commands) -> None:
    spend = commands.add_parser(
        "spend",
        help="Export the spend ledger.",
        description="Export the spend ledger: one row per call with team, person, prompt, tokens and exact cost.",
    )
    spend_sub = spend.add_subparsers(title="spend commands", metavar="COMMAND", required=True)
    ledger = spend_sub.add_parser(
        "export",
        help="Write a month's ledger rows (charge-back) to a file.",
        description="Every ledger row of a month (the budget period, in the configured time zone), oldest first.",
    )
    ledger.add_argument("--month", required=True, help="The month, as 2026-03.")
    _common(ledger)
    ledger.set_defaults(func=_spend)

    calls = commands.add_parser(
        "calls",
        help="Export the gateway's call log.",
        description="Export the gateway's call log: one row per call, whatever its outcome.",
    )
    calls_sub = calls.add_subparsers(title="calls commands", metavar="COMMAND", required=True)
    log = calls_sub.add_parser(
        "export",
        help="Write the calls of a time range to a file.",
        description="Every call in [--since, --until), oldest first.",
    )
    log.add_argument("--since", help="From (UTC, inclusive), e.g. 2026-03-01.")
    log.add_argument("--until", help="Until (UTC, exclusive).")
    _common(log)
    log.set_defaults(func=_calls)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", help="Only this team (by name).")
    parser.add_argument("--format", choices=exports.FORMATS, default="csv", help="csv or jsonl (default csv).")
    parser.add_argument("--output", required=True, help="The file to write.")


def _team_id(session: Session, name: str | None) -> int | None:
    return identity.team_by_name(session, name).id if name else None


def _month(text: str) -> periods.Period:
    try:
        start = datetime.strptime(text.strip(), "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError(f"--month: {text!r} is not a month such as 2026-03") from None
    return periods.period_at("month", start.replace(day=15))


def _spend(args: Namespace) -> int:
    with db.session_scope() as session:
        export = ledger_export.prepare(
            session=session,
            actor=CLI_ACTOR,
            month=_month(args.month),
            team_id=_team_id(session, args.team),
            fmt=args.format,
        )
        return _write(export, args.output, "ledger rows")


def _calls(args: Namespace) -> int:
    with db.session_scope() as session:
        export = call_export.prepare(
            session=session,
            actor=CLI_ACTOR,
            since=parse_time(args.since, field="--since"),
            until=parse_time(args.until, field="--until"),
            team_ids=[team] if (team := _team_id(session, args.team)) is not None else [],
            fmt=args.format,
        )
        return _write(export, args.output, "calls")


def _write(export: exports.Export, output: str, noun: str) -> int:
    progress = exports.TerminalProgress(noun)
    count = exports.write_file(export, output, progress=progress)
    progress.done()
    print(f"exported {count} {noun} to {output}", file=sys.stderr)
    return 0
