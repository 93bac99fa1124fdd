"""Demo seed step: 90 days of plausible usage for the four teams, and their budgets.

Ledger rows are priced from the price book at their own time and inserted in bulk.
Support is set at about 85% of its monthly budget, so its 50% and 80% alerts exist.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import insert, select
from sqlmodel import Session

from core import clock
from core.budgets import alerts, config, counters, periods, rollups
from core.budgets.money import MICRO_PER_DOLLAR, ceil_div
from core.budgets.prices import price_book
from core.budgets.pricing import Usage, cost_micro
from core.models.budgets import UsageRecord
from core.models.catalog import Prompt
from core.models.identity import Membership, Team
from core.permissions import Actor

SEED_ACTOR = Actor.system("demo-seed")
DAYS = 90

# team -> (calls per working day, [(model, share, typical input, typical output, cached share, reasoning)])
PROFILES = {
    "Support": (110, [("gpt-4.1-mini", 0.7, 2200, 350, 0.5, 0), ("gpt-4o-mini", 0.3, 1200, 120, 0.3, 0)]),
    "Marketing": (30, [("gpt-4.1", 0.6, 1500, 700, 0.2, 0), ("gpt-4o", 0.4, 1200, 600, 0.1, 0)]),
    "Legal": (18, [("gpt-4.1", 0.7, 9000, 900, 0.4, 0), ("o3", 0.3, 6000, 2500, 0.2, 1500)]),
    "Data": (
        45,
        [
            ("gpt-4.1-mini", 0.5, 1800, 500, 0.3, 0),
            ("o4-mini", 0.3, 2500, 1800, 0.1, 1200),
            ("text-embedding-3-small", 0.2, 800, 0, 0.0, 0),
        ],
    ),
}
SUPPORT_SHARE_OF_BUDGET = 0.85


def seed_budgets(session: Session) -> None:
    rng = random.Random(20261120)
    now = clock.now()
    book = price_book(session)
    teams = {t.name: t.id for t in session.execute(select(Team)).scalars()}
    # Each team's history uses its own catalog prompts (and some calls without one).
    own_prompts: dict[int, list[int | None]] = {}
    for prompt_id, owner in session.execute(select(Prompt.id, Prompt.team_id).order_by(Prompt.id)):
        own_prompts.setdefault(owner, []).append(prompt_id)
    members: dict[int, list[int]] = {}
    for m in session.execute(select(Membership)).scalars():
        members.setdefault(m.team_id, []).append(m.person_id)
    rows: list[dict] = []
    prices: dict = {}
    for name, (per_day, mix) in PROFILES.items():
        team_id = teams.get(name)
        if team_id is None:
            continue
        for days_ago in range(DAYS, -1, -1):
            day_start = now - timedelta(days=days_ago)
            weekday = periods.local_date(day_start).weekday()
            count = int(
                per_day * (0.35 if weekday >= 5 else 1.0) * rng.uniform(0.8, 1.2) * (1 + (DAYS - days_ago) / 300)
            )
            for _ in range(count):
                at = day_start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                    seconds=rng.uniform(0, 86399)
                )
                if at > now:
                    continue
                model, _share, typical_in, typical_out, cached_share, reasoning = _pick(rng, mix)
                input_tokens = max(20, int(rng.gauss(typical_in, typical_in * 0.3)))
                output_tokens = max(0, int(rng.gauss(typical_out, typical_out * 0.4))) if typical_out else 0
                usage = Usage(
                    input_tokens=input_tokens,
                    cached_input_tokens=int(input_tokens * cached_share * rng.random()),
                    output_tokens=output_tokens,
                    reasoning_tokens=min(output_tokens, int(reasoning * rng.random())),
                )
                people = members.get(team_id) or [None]
                prompts = own_prompts.get(team_id, []) + [None]
                rows.append(
                    {
                        "occurred_at": at,
                        "team_id": team_id,
                        "person_id": rng.choice(people),
                        "key_id": None,
                        "prompt_id": rng.choice(prompts),
                        "prompt_version_id": None,
                        "model": model,
                        "input_tokens": usage.input_tokens,
                        "cached_input_tokens": usage.cached_input_tokens,
                        "output_tokens": usage.output_tokens,
                        "reasoning_tokens": usage.reasoning_tokens,
                        "cost_micro": cost_micro(_price(book, prices, model, at), usage),
                        "latency_ms": int(rng.lognormvariate(6.5, 0.5)),
                        "status": "ok",
                        "cache_hit": False,
                        "request_id": None,
                    }
                )
    if rows:
        session.execute(insert(UsageRecord.__table__), rows)
        rollups.add_ledger_rows(session.connection(), rows)  # as a fold of these calls would have
        session.commit()

    month = periods.period_at("month", now)
    for name, team_id in teams.items():
        if name not in PROFILES:
            continue
        spent = sum(r["cost_micro"] for r in rows if r["team_id"] == team_id and r["occurred_at"] >= month.start)
        if name == "Support":
            cap = max(MICRO_PER_DOLLAR, ceil_div(spent * 100, int(SUPPORT_SHARE_OF_BUDGET * 100)))
        else:
            cap = max(10 * MICRO_PER_DOLLAR, spent * 3)
        cap = ceil_div(cap, 10_000) * 10_000  # whole cents
        budget = config.set_budget(
            session=session,
            actor=SEED_ACTOR,
            scope="team",
            target_id=team_id,
            data=config.BudgetInput(cap_usd=_dollars(cap), hard=name != "Marketing"),
        )
        rule = config.BudgetRule.of(budget)
        key = periods.period_key(rule.period, now)
        counters.ensure(session, rule, key, now)
        alerts.check(session, rule, key)
        session.commit()


def _price(book, cache: dict, model: str, at):
    # Prices change at most daily: look each (model, day) up once.
    key = (model, at.date())
    if key not in cache:
        cache[key] = book.price_at(model, at.replace(hour=23, minute=59, second=59))
        if cache[key] != book.price_at(model, at.replace(hour=0, minute=0, second=0)):
            return book.price_at(model, at)  # a price change that day: exact lookup
    return cache[key]


def _dollars(micro: int) -> str:
    return f"{micro // MICRO_PER_DOLLAR}.{micro % MICRO_PER_DOLLAR:06d}"


def _pick(rng: random.Random, mix):
    roll, total = rng.random(), 0.0
    for entry in mix:
        total += entry[1]
        if roll <= total:
            return entry
    return mix[-1]
