"""`quorum finance ...`: reconcile with the provider's bill, close a month, write a statement."""

from __future__ import annotations

from argparse import Namespace
from datetime import date, timedelta

from core import clock, db
from core.cli import CLI_ACTOR, Commands
from core.db import saved_id
from core.errors import ValidationError
from core.exports import write_file
from core.finance import close, reconcile, statements
from core.identity import people as identity


def register(commands: Commands) -> None:
    group = commands.add_parser(
        "finance",
        help="Reconcile with the provider's bill, close months, chargeback statements.",
        description="Reconcile the ledger with the provider's Usage and Costs APIs, close a month, and "
        "write a team's chargeback statement.",
    )
    sub = group.add_subparsers(title="finance commands", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "reconcile",
        help="Compare the ledger with the provider's usage and costs, per day and model.",
        description="Compare each UTC day's ledger with the provider's organization usage and costs "
        "(default: yesterday), store and audit the result. Safe to run from cron on several servers: "
        "one runs at a time, the others stop. Exit status 2 when a day differs or the provider could "
        "not be read.",
    )
    run.add_argument("--day", help="The UTC day to reconcile (YYYY-MM-DD); default yesterday.")
    run.add_argument("--from", dest="first", help="Reconcile from this UTC day on (with --to).")
    run.add_argument("--to", dest="last", help="Reconcile up to this UTC day, inclusive (default: --from).")
    run.set_defaults(func=_reconcile)
    closing = sub.add_parser(
        "close",
        help="Close a month for every team (its ledger, prices and reconciliation freeze).",
        description="Close a budget month for every team: its ledger, prices and reconciliation are "
        "frozen. Reopening needs finance's reason and an admin's approval, on the Finance page.",
    )
    closing.add_argument("--month", required=True, help="The month, YYYY-MM.")
    closing.set_defaults(func=_close)
    statement = sub.add_parser(
        "statement",
        help="Write a team's chargeback statement of a closed month as CSV.",
        description="Write a team's chargeback statement of a closed month (totals by model, prompt "
        "and person, budget against actual, reconciliation status, cost center) as CSV.",
    )
    statement.add_argument("--month", required=True, help="The closed month, YYYY-MM.")
    statement.add_argument("--team", required=True, help="The team, by name.")
    statement.add_argument("--output", required=True, help="The CSV file to write.")
    statement.set_defaults(func=_statement)


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{option}: {text!r} is not a day (YYYY-MM-DD)") from None


def _reconcile(args: Namespace) -> int:
    if args.day and (args.first or args.last):
        raise ValidationError("Give either --day or --from/--to")
    first = _day(args.day or args.first, "--day" if args.day else "--from")
    if first is None:
        first = clock.now().date() - timedelta(days=1)
    last = _day(args.last, "--to") or first
    results = reconcile.reconcile_days(actor=CLI_ACTOR, first=first, last=last)
    for result in results:
        print(f"{result.day}  {result.status:<12} {result.message}")
    return 0 if all(r.status in ("matched", "closed") for r in results) else 2


def _close(args: Namespace) -> int:
    with db.write_session() as session:
        closed = close.close_month(session=session, actor=CLI_ACTOR, month=args.month)
    print(f"closed {closed.month} for every team")
    return 0


def _statement(args: Namespace) -> int:
    with db.session() as session:
        team_id = saved_id(identity.team_by_name(session, args.team))
        found = statements.statement(session, actor=CLI_ACTOR, month=args.month, team_id=team_id)
        export = statements.statement_export(session, actor=CLI_ACTOR, month=args.month, team_id=team_id)
        write_file(export, args.output)
    print(statements.describe(found))
    print(f"wrote {args.output}")
    return 0
