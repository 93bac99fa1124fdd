"""Demo seed step: two incidents on top of the demo's weekly rhythm of usage, detected at once,
so the Alerts page shows something true on first start.

Marketing's campaign prompt runs away for an hour (a loop resending long drafts to gpt-4.1)
and Legal's contract reviews spend about twenty times their usual for two hours the evening
before. Both are ledger rows, like the budgets seed's, so the roll-ups, Spend and a
`quorum rollups rebuild` all agree with the alerts.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from core import clock
from core.anomalies import run
from core.budgets import rollups
from core.budgets.pricing import PriceBook, Usage, cost_micro
from core.budgets.reservations import current_price_book
from core.db import table_of
from core.models.budgets import UsageRecord
from core.models.catalog import Prompt
from core.models.identity import Team

HOUR = timedelta(hours=1)
# team -> (hours ago the incident starts, hours, calls per hour, model, typical input and output
# tokens per call). Each call costs what the price book says (about $0.09 and $0.06 here): the
# demo's provider bill is made from these rows too, and must agree with the ledger.
INCIDENTS = {
    "Marketing": (2, 1, 420, "gpt-4.1", 15_000, 7_500),
    "Legal": (20, 2, 160, "gpt-4.1", 24_000, 1_500),
}


def seed_anomalies(session: Session) -> None:
    rng = random.Random(20261127)
    newest = run.last_closed_hour()
    teams = {t.name: t.id for t in session.execute(select(Team)).scalars()}
    prompt = table_of(Prompt).c
    rows: list[dict[str, Any]] = []
    book = current_price_book(session)
    for name, (ago, hours, per_hour, model, typical_in, typical_out) in INCIDENTS.items():
        team_id = teams.get(name)
        if team_id is None:
            continue
        prompt_id = session.execute(select(prompt.id).where(prompt.team_id == team_id).limit(1)).scalar()
        for hour in (newest - (ago - 1 - h) * HOUR for h in range(hours)):
            rows.extend(_calls(rng, book, team_id, prompt_id, hour, per_hour, model, typical_in, typical_out))
    if rows:
        session.execute(insert(table_of(UsageRecord)), rows)
        rollups.add_ledger_rows(session.connection(), rows)
        session.commit()
    run.detect(actor=run.SYSTEM, engine=session.get_bind().engine)


def _calls(
    rng: random.Random,
    book: PriceBook,
    team_id: int,
    prompt_id: int | None,
    hour: datetime,
    count: int,
    model: str,
    typical_in: int,
    typical_out: int,
) -> list[dict[str, Any]]:
    now = clock.now()
    result = []
    for _ in range(count):
        at = hour + timedelta(seconds=rng.uniform(0, 3599))
        if at > now:
            continue
        usage = Usage(
            input_tokens=int(rng.gauss(typical_in, typical_in * 0.2)),
            output_tokens=int(rng.gauss(typical_out, typical_out * 0.2)),
        )
        result.append(
            {
                "occurred_at": at,
                "team_id": team_id,
                "person_id": None,
                "key_id": None,
                "prompt_id": prompt_id,
                "prompt_version_id": None,
                "model": model,
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": 0,
                "output_tokens": usage.output_tokens,
                "reasoning_tokens": 0,
                "cost_micro": cost_micro(book.price_at(model, at), usage),
                "latency_ms": int(rng.lognormvariate(7.5, 0.4)),
                "status": "ok",
                "cache_hit": False,
                "request_id": None,
            }
        )
    return result
