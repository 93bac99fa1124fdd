"""`quorum rollups ...`: the hourly roll-ups that Spend, Observability, Home and Live A/B read."""

from __future__ import annotations

import time
from argparse import Namespace

from core import db
from core.audit.query import parse_time
from core.budgets import rollups
from core.cli import CLI_ACTOR, Commands


def register(commands: Commands) -> None:
    group = commands.add_parser(
        "rollups",
        help="Hourly roll-ups of the usage ledger and the call log.",
        description="Hourly roll-ups of the usage ledger and the call log (settled calls are folded in "
        "about once a second, and before any page reads them).",
    )
    sub = group.add_subparsers(title="rollups commands", metavar="COMMAND", required=True)
    rebuild = sub.add_parser(
        "rebuild",
        help="Recompute the roll-ups exactly from the ledger and the call log.",
        description="Recompute the roll-ups from the usage ledger and the gateway call log, in one "
        "transaction (folds of settled calls wait for it; the calls still waiting are left to their fold): "
        "all of them, or from the hour of --from on.",
    )
    rebuild.add_argument("--from", dest="since", help="Rebuild from this UTC date or time on (e.g. 2026-11-01).")
    rebuild.set_defaults(func=_rebuild)


def _rebuild(args: Namespace) -> int:
    since = parse_time(args.since, field="--from")
    started = time.perf_counter()
    with db.write_session() as session:
        result = rollups.rebuild_rollups(session, actor=CLI_ACTOR, since=since)
    print(
        f"rebuilt from {result.since:%Y-%m-%d %H:00} UTC" if result.since else "rebuilt everything",
        f"- {result.ledger_rows:,} ledger rows into {result.usage_groups:,} roll-ups, "
        f"{result.call_rows:,} calls into {result.call_groups:,}, in {time.perf_counter() - started:.1f} s",
    )
    return 0
