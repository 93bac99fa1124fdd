"""Reconcile the ledger with the provider's bill, one UTC day at a time.

For each day and model, Quorum's ledger (calls that reached the provider: response-cache
hits did not) is compared with the provider's usage and costs, per provider project and
key; ``explain`` says what each difference is. Every run is stored with its lines and an
audit event, and the newest run of a day is that day's status. When the provider cannot
be read, the run says so (``unreachable``) and no line is stored: nothing is marked
reconciled on a partial bill. A day of a closed month is frozen and not run again.

Several servers may run ``quorum finance reconcile`` from cron: a lease row
(``finance_lock``) lets one of them work at a time; a crashed holder's lease expires.
"""

from __future__ import annotations

import os
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core import clock, db
from core.audit.record import record
from core.budgets.frozen import closed_month_overlapping
from core.budgets.prices import price_book
from core.budgets.pricing import PriceBook
from core.budgets.rollups import LEDGER
from core.db import changed_rows
from core.errors import Conflict, NotFound, QuorumError
from core.finance.explain import Boundary, Line, Side, Tokens, compare_model
from core.finance.provider_usage import ProviderClient, ProviderDay, ProviderUnreachable
from core.models.budgets import UsageRecord
from core.models.finance import FinanceLock, ReconciliationLine, ReconciliationRun
from core.models.types import UtcDateTime
from core.permissions import Actor, Permission, require
from core.settings import Settings, settings
from core.simulator.billing import QUORUM_PROJECT_ID

LEASE = timedelta(minutes=10)
LOCK_NAME = "reconcile"


@dataclass(frozen=True)
class DayResult:
    day: date
    status: str  # matched | differences | unreachable | closed
    message: str
    quorum_micro: int = 0
    provider_micro: int = 0
    bypass_micro: int = 0
    bypass_tokens: int = 0
    run_id: int | None = None


def utc_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def our_projects(config: Settings) -> tuple[str, ...]:
    """The provider projects Quorum's own traffic runs under; empty: all of it is taken as Quorum's."""
    if config.openai_project_ids:
        return config.openai_project_ids
    return (QUORUM_PROJECT_ID,) if config.uses_simulator else ()


def reconcile_days(
    *,
    actor: Actor,
    first: date,
    last: date,
    provider: ProviderClient | None = None,
    engine: Engine | None = None,
    holder: str | None = None,
) -> list[DayResult]:
    """Reconcile every UTC day from ``first`` to ``last`` (inclusive): one stored, audited run per day.

    Days of a closed month are left as they are (``closed``). Takes the lease first: another
    server already reconciling makes this one stop with a ``Conflict``.
    """
    require(actor, Permission.RECONCILE)
    if last < first:
        raise QuorumError(f"The last day ({last}) is before the first ({first})")
    if (last - first).days > 366:
        raise QuorumError("Reconcile at most a year at a time")
    config = settings()
    provider = provider or ProviderClient.from_settings(config)
    engine = engine or db.get_engine()
    holder = holder or f"{socket.gethostname()}:{os.getpid()}:{id(object())}"
    _acquire(engine, holder)
    try:
        try:
            bill: dict[date, ProviderDay] | ProviderUnreachable = provider.days(first, last + timedelta(days=1))
        except ProviderUnreachable as error:
            bill = error
        results = []
        day = first
        while day <= last:
            with db.write_session(engine) as session:
                results.append(_reconcile_one(session, actor, day, bill, config))
            day += timedelta(days=1)
        return results
    finally:
        _release(engine, holder)


def _reconcile_one(
    session: Session,
    actor: Actor,
    day: date,
    bill: dict[date, ProviderDay] | ProviderUnreachable,
    config: Settings,
) -> DayResult:
    start, end = utc_bounds(day)
    closed = closed_month_overlapping(session, start, end)
    if closed is not None:
        return DayResult(day, "closed", f"{closed.month} is closed; its reconciliation is frozen")
    if isinstance(bill, ProviderUnreachable):
        result = DayResult(day, "unreachable", str(bill))
        lines: list[Line] = []
    else:
        lines = compare_day(session, day, bill[day], config)
        result = _summary(day, lines)
    try:
        run = ReconciliationRun(
            day=day.isoformat(),
            status=result.status,
            message=result.message,
            quorum_micro=result.quorum_micro,
            provider_micro=result.provider_micro,
            bypass_micro=result.bypass_micro,
            bypass_tokens=result.bypass_tokens,
            actor=actor.ref,
        )
        session.add(run)
        session.flush()
        session.add_all(
            ReconciliationLine(
                run_id=db.saved_id(run),
                model=line.model,
                project_id=line.project_id[:80],
                api_key_id=line.api_key_id[:80],
                kind=line.kind,
                quorum_input_tokens=line.quorum.input,
                quorum_cached_tokens=line.quorum.cached,
                quorum_output_tokens=line.quorum.output,
                provider_input_tokens=line.provider.input,
                provider_cached_tokens=line.provider.cached,
                provider_output_tokens=line.provider.output,
                quorum_micro=line.quorum_micro,
                provider_micro=line.provider_micro,
                explanation=line.explanation,
            )
            for line in lines
        )
        record(
            session,
            actor=actor,
            action="finance.reconcile",
            target_type="reconciliation_run",
            target_id=db.saved_id(run),
            after={
                "day": run.day,
                "status": run.status,
                "quorum_micro": run.quorum_micro,
                "provider_micro": run.provider_micro,
                "bypass_micro": run.bypass_micro,
                "bypass_tokens": run.bypass_tokens,
            },
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return DayResult(**{**result.__dict__, "run_id": run.id})


def _summary(day: date, lines: Sequence[Line]) -> DayResult:
    bypass = [line for line in lines if line.kind == "bypass"]
    bypass_tokens = sum(line.provider.total - line.quorum.total for line in bypass)
    bypass_micro = sum(line.provider_micro - line.quorum_micro for line in bypass)
    differing = [line for line in lines if line.kind != "match"]
    if not differing:
        message = "The ledger matches the provider's bill."
    else:
        kinds = sorted({line.kind for line in differing})
        message = f"{len(differing)} difference(s): {', '.join(kinds)}"
        if bypass:
            message = f"{bypass_tokens:,} tokens bypassed Quorum. " + message
    return DayResult(
        day,
        "matched" if not differing else "differences",
        message,
        quorum_micro=sum(line.quorum_micro for line in lines),
        provider_micro=sum(line.provider_micro for line in lines),
        bypass_micro=bypass_micro,
        bypass_tokens=bypass_tokens,
    )


# ---- the comparison of one day --------------------------------------------------------------


def compare_day(session: Session, day: date, bill: ProviderDay, config: Settings) -> list[Line]:
    """The lines of ``day``: per model, Quorum's traffic and each foreign project or key."""
    book = price_book(session)
    quorum = _ledger(session, book, *utc_bounds(day))
    projects = our_projects(config)
    ours, others = _provider(bill, book, projects)
    window = timedelta(seconds=config.upstream_timeout_s * config.upstream_max_attempts)
    start, end = utc_bounds(day)
    lines: list[Line] = []
    for model in sorted(set(quorum) | set(ours) | set(others)):
        before_start = _tokens_started(session, book, model, start - window, start)
        before_end = _tokens_started(session, book, model, end - window, end)
        try:
            price = book.price_at(model, start + timedelta(hours=12))
        except QuorumError:
            price = None
        lines += compare_model(
            day=day,
            model=model,
            quorum=quorum.get(model, Side()),
            ours=ours.get(model, Side()),
            others=others.get(model, {}),
            price=price,
            boundary=Boundary(before_start, before_end),
            tolerance_micro=config.reconcile_tolerance_micro,
            our_project=",".join(projects),
            our_key="",
        )
    return lines


def _ledger(session: Session, book: PriceBook, start: datetime, end: datetime) -> dict[str, Side]:
    ledger = LEDGER.c
    rows = session.execute(
        sa_select(
            ledger.model,
            func.sum(ledger.input_tokens),
            func.sum(ledger.cached_input_tokens),
            func.sum(ledger.output_tokens),
            func.sum(ledger.cost_micro),
        )
        .where(ledger.occurred_at >= start, ledger.occurred_at < end, ledger.cache_hit.is_(False))
        .group_by(ledger.model)
    ).all()
    sides: dict[str, Side] = defaultdict(Side)
    for model, input_tokens, cached, output, micro in rows:
        side = sides[book.resolve_model(model)]
        side.tokens.add(Tokens(int(input_tokens or 0), int(cached or 0), int(output or 0)))
        side.micro += int(micro or 0)
    return dict(sides)


def _tokens_started(session: Session, book: PriceBook, model: str, start: datetime, end: datetime) -> int:
    names = {model, *(alias for alias, target in book.aliases().items() if target == model)}
    total = session.exec(
        select(func.sum(UsageRecord.input_tokens + UsageRecord.output_tokens))
        .where(col(UsageRecord.occurred_at) >= start, col(UsageRecord.occurred_at) < end)
        .where(col(UsageRecord.cache_hit).is_(False), col(UsageRecord.model).in_(names))
    ).one()
    return int(total or 0)


def _provider(
    bill: ProviderDay, book: PriceBook, projects: tuple[str, ...]
) -> tuple[dict[str, Side], dict[str, dict[tuple[str, str], Side]]]:
    """The bill split into Quorum's projects (per model) and every other (project, key) per model.

    The Costs API groups by project and line item, not by key: a foreign project's dollars
    are shared among its keys by their tokens.
    """
    ours: dict[str, Side] = defaultdict(Side)
    others: dict[str, dict[tuple[str, str], Side]] = defaultdict(dict)

    def is_ours(project_id: str) -> bool:
        return not projects or project_id in projects

    for usage in bill.usage:
        model = book.resolve_model(usage.model)
        tokens = Tokens(usage.input_tokens, usage.cached_tokens, usage.output_tokens)
        if is_ours(usage.project_id):
            ours[model].tokens.add(tokens)
        else:
            side = others[model].setdefault((usage.project_id, usage.api_key_id), Side())
            side.tokens.add(tokens)
    foreign_costs: dict[tuple[str, str], int] = defaultdict(int)
    for cost in bill.costs:
        model = book.resolve_model(cost.model)
        if is_ours(cost.project_id):
            ours[model].micro += cost.micro
            ours[model].items[cost.item] = ours[model].items.get(cost.item, 0) + cost.micro
        else:
            foreign_costs[cost.project_id, model] += cost.micro
    for model, sides in others.items():
        by_project: dict[str, list[Side]] = defaultdict(list)
        for (project_id, _key), side in sides.items():
            by_project[project_id].append(side)
        for project_id, project_sides in by_project.items():
            share_by_tokens(foreign_costs.get((project_id, model), 0), project_sides)
    return dict(ours), dict(others)


def share_by_tokens(micro: int, sides: list[Side]) -> None:
    """Split ``micro`` among ``sides`` by tokens, the remainder to the last, so the parts add up."""
    total = sum(side.tokens.total for side in sides) or 1
    given = 0
    for side in sides[:-1]:
        side.micro = micro * side.tokens.total // total
        given += side.micro
    sides[-1].micro = micro - given


# ---- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayStatus:
    day: str
    status: str
    message: str
    quorum_micro: int
    provider_micro: int
    bypass_micro: int
    bypass_tokens: int
    run_id: int
    reconciled_at: datetime


def day_statuses(session: Session, *, actor: Actor, first: date, last: date) -> list[DayStatus]:
    """The newest run of every reconciled day from ``first`` to ``last``, oldest day first."""
    require(actor, Permission.SPEND_READ)
    newest = (
        select(func.max(ReconciliationRun.id))
        .where(col(ReconciliationRun.day) >= first.isoformat(), col(ReconciliationRun.day) <= last.isoformat())
        .group_by(ReconciliationRun.day)
    )
    runs = session.exec(
        select(ReconciliationRun).where(col(ReconciliationRun.id).in_(newest)).order_by(col(ReconciliationRun.day))
    ).all()
    return [
        DayStatus(
            r.day,
            r.status,
            r.message,
            r.quorum_micro,
            r.provider_micro,
            r.bypass_micro,
            r.bypass_tokens,
            db.saved_id(r),
            r.created_at,
        )
        for r in runs
    ]


def run_lines(session: Session, *, actor: Actor, run_id: int) -> list[ReconciliationLine]:
    """A run's lines: bypass first, then the other differences, then the matches."""
    require(actor, Permission.SPEND_READ)
    if session.get(ReconciliationRun, run_id) is None:
        raise NotFound(f"No reconciliation run {run_id}")
    order = {"bypass": 0, "unexplained": 1, "price_book": 2, "cached_pricing": 3, "in_flight": 4, "match": 5}
    lines = session.exec(select(ReconciliationLine).where(ReconciliationLine.run_id == run_id)).all()
    return sorted(lines, key=lambda line: (order.get(line.kind, 9), line.model, line.project_id))


# ---- the lease --------------------------------------------------------------------------------


def _acquire(engine: Engine, holder: str) -> None:
    busy = "Another server is reconciling right now; this run stops (the next scheduled run continues)"
    with db.write_session(engine) as session:
        now = clock.now()
        taken = changed_rows(
            session.execute(
                text(
                    "UPDATE finance_lock SET holder = :me, expires_at = :exp "
                    "WHERE name = :name AND (expires_at < :now OR holder = :me)"
                ).bindparams(bindparam("exp", type_=UtcDateTime()), bindparam("now", type_=UtcDateTime())),
                {"me": holder, "exp": now + LEASE, "name": LOCK_NAME, "now": now},
            )
        )
        if not taken:
            if session.get(FinanceLock, LOCK_NAME) is not None:
                raise Conflict(busy)
            session.add(FinanceLock(name=LOCK_NAME, holder=holder, expires_at=now + LEASE))
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(busy) from None


def _release(engine: Engine, holder: str) -> None:
    with db.write_session(engine) as session:
        session.execute(
            text("DELETE FROM finance_lock WHERE name = :name AND holder = :me"), {"name": LOCK_NAME, "me": holder}
        )
        session.commit()
