"""Price overrides in the database, layered on data/pricing.yaml.

An override is an entry like the file's, kept in `price_override`; the book a call is
priced with is the file's book `with_overrides(...)` of every stored override. Only
overrides that have not taken effect yet can be removed: a price that already applied
to a call stays, so a report never re-prices the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import clock, formatting
from core.audit.record import committing, record
from core.budgets import hot_cache
from core.budgets.frozen import frozen_until
from core.budgets.money import micro_to_decimal, parse_dollars_to_micro
from core.budgets.pricing import OVERRIDES_ORIGIN, Price, PriceBook
from core.budgets.pricing_file import parse_price_entries
from core.db import get_or_not_found
from core.errors import Conflict, ValidationError
from core.guardrails.saved_text import refuse_secrets_in
from core.models.budgets import PriceOverride
from core.permissions import Actor, Permission, require


@lru_cache(maxsize=1)
def file_book() -> PriceBook:
    """The shipped price book (read once per process)."""
    return PriceBook.from_yaml()


def price_book(session: Session) -> PriceBook:
    """The file's prices with every stored override on top."""
    rows = session.exec(select(PriceOverride).order_by(col(PriceOverride.id))).all()
    if not rows:
        return file_book()
    return file_book().with_overrides(_raw(row) for row in rows)


def _raw(row: PriceOverride) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "model": row.model,
        "effective_from": row.effective_from.isoformat(),
        "input": str(micro_to_decimal(row.input_micro_per_1m)),
        "source": row.source,
    }
    if row.cached_input_micro_per_1m is not None:
        raw["cached_input"] = str(micro_to_decimal(row.cached_input_micro_per_1m))
    if row.output_micro_per_1m is not None:
        raw["output"] = str(micro_to_decimal(row.output_micro_per_1m))
    return raw


def _snapshot(row: PriceOverride) -> dict[str, Any]:
    return {
        "model": row.model,
        "effective_from": row.effective_from,
        "input_micro_per_1m": row.input_micro_per_1m,
        "cached_input_micro_per_1m": row.cached_input_micro_per_1m,
        "output_micro_per_1m": row.output_micro_per_1m,
        "source": row.source,
    }


@dataclass(frozen=True)
class PriceRow:
    model: str
    effective_from: datetime
    input: str
    cached_input: str
    output: str
    source: str
    origin: str
    override_id: int | None


def list_prices(session: Session, *, actor: Actor) -> list[PriceRow]:
    """Every price entry of the book in use (file and overrides), by model then date."""
    require(actor, Permission.SPEND_READ)
    ids = {(r.model, r.effective_from): r.id for r in session.exec(select(PriceOverride))}
    book = price_book(session)
    rows = []
    for model in book.models():
        for price in book.history(model):
            override_id = ids.get((price.model, price.effective_from)) if price.origin == OVERRIDES_ORIGIN else None
            rows.append(_row(price, override_id))
    return rows


def _row(price: Price, override_id: int | None) -> PriceRow:
    return PriceRow(
        price.model,
        price.effective_from,
        formatting.price(price.input_micro_per_1m),
        formatting.price(price.cached_input_micro_per_1m),
        formatting.price(price.output_micro_per_1m),
        price.source,
        price.origin,
        override_id,
    )


def add_override(
    *,
    session: Session,
    actor: Actor,
    model: str,
    effective_from: str | datetime,
    input: str,
    output: str | None = None,
    cached_input: str | None = None,
    source: str,
) -> PriceOverride:
    """Add a price entry (dollar amounts per 1M tokens as decimal strings); audited."""
    require(actor, Permission.PRICE_MANAGE)
    refuse_secrets_in({"the model name": model, "the price's source": source})
    raw: dict[str, Any] = {
        "model": (model or "").strip(),
        "effective_from": effective_from,
        "input": input,
        "source": (source or "").strip(),
    }
    if output not in (None, ""):
        raw["output"] = output
    if cached_input not in (None, ""):
        raw["cached_input"] = cached_input
    if isinstance(effective_from, datetime):
        raw["effective_from"] = effective_from.isoformat()
    problems = _override_problems(raw)
    if problems:
        raise ValidationError("; ".join(problems))
    (price,) = parse_price_entries([raw], origin=OVERRIDES_ORIGIN, list_name="overrides")
    # A price from a date before the end of a closed month would re-price that month's bill.
    frozen = frozen_until(session)
    if frozen is not None and price.effective_from < frozen:
        raise Conflict(
            f"Prices are frozen until {frozen:%Y-%m-%d %H:%M} UTC (a closed month): an override for "
            f"{price.model} from {price.effective_from.date().isoformat()} would change it; date it later "
            "or ask finance to reopen the month"
        )
    # The whole book must still be valid (e.g. not an alias name) before anything is stored.
    price_book(session).with_overrides([raw])
    if session.exec(
        select(PriceOverride).where(
            PriceOverride.model == price.model, PriceOverride.effective_from == price.effective_from
        )
    ).first():
        raise Conflict(f"An override for {price.model} from {price.effective_from.isoformat()} already exists")
    row = PriceOverride(
        model=price.model,
        effective_from=price.effective_from,
        input_micro_per_1m=price.input_micro_per_1m,
        cached_input_micro_per_1m=price.cached_input_micro_per_1m if "cached_input" in raw else None,
        output_micro_per_1m=price.output_micro_per_1m,
        source=price.source[:200],
    )
    try:
        session.add(row)
        session.flush()
        record(
            session,
            actor=actor,
            action="price.override.add",
            target_type="price_override",
            target_id=row.id,
            before=None,
            after=_snapshot(row),
        )
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict(
            f"An override for {price.model} from {price.effective_from.isoformat()} already exists"
        ) from error
    except BaseException:
        session.rollback()
        raise
    hot_cache.invalidate()
    return row


def _override_problems(raw: dict[str, Any]) -> list[str]:
    """Every problem of an override typed into a form, in the form's words, at once (the price
    file's own checks report one schema path at a time)."""
    problems = []
    if not raw["model"]:
        problems.append("Name the model")
    for field, what in (("input", "input price"), ("cached_input", "cached input price"), ("output", "output price")):
        value = raw.get(field)
        if value in (None, ""):
            if field == "input":
                problems.append("Give the input price (USD per 1M tokens)")
            continue
        try:
            if parse_dollars_to_micro(str(value)) < 0:
                problems.append(f"The {what} cannot be negative (got {value})")
        except ValidationError as error:
            problems.append(f"The {what}: {error}")
    if not raw["source"]:
        problems.append("Say where the price comes from (e.g. the provider's pricing page)")
    return problems


def delete_override(*, session: Session, actor: Actor, override_id: int) -> None:
    """Remove an override that has not taken effect yet; audited with what it was."""
    require(actor, Permission.PRICE_MANAGE)
    row = get_or_not_found(session, PriceOverride, override_id, "price override")
    if row.effective_from <= clock.now():
        raise ValidationError(
            f"The override for {row.model} took effect on {row.effective_from.date().isoformat()} and may have "
            "priced calls already; add a newer entry instead of removing it"
        )
    before = _snapshot(row)
    with committing(session):
        session.delete(row)
        record(
            session,
            actor=actor,
            action="price.override.delete",
            target_type="price_override",
            target_id=override_id,
            before=before,
            after=None,
        )
    hot_cache.invalidate()
