"""Budgets and team spending policies: who may set them, and what a valid one is.

A budget limits a team, a person or a prompt per period, in micro-dollars and/or tokens.
Hard budgets refuse calls that do not fit; soft ones only alert. Every change is audited
with the budget as it was and as it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.budgets import hot_cache, periods
from core.budgets.money import parse_dollars_to_micro
from core.budgets.prices import price_book
from core.db import get_or_not_found
from core.errors import Conflict, ValidationError
from core.models.budgets import Budget, TeamBudgetPolicy
from core.models.identity import Person, Team
from core.permissions import Actor, Permission, require

SCOPES = ("team", "person", "prompt")
DEFAULT_THRESHOLDS = (50, 80, 100)
# A thousand times a year of a large company's traffic; sums of caps still fit 64-bit integers.
MAX_TOKEN_CAP = 10**15
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")


@dataclass(frozen=True)
class BudgetInput:
    """What a person fills in; amounts in dollars as text ("2500", "0.50") or micro-dollars."""

    cap_usd: str | None = None
    cap_tokens: int | None = None
    period: str = "month"
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    hard: bool = True
    max_request_usd: str | None = None
    webhook_url: str | None = None


def snapshot(budget: Budget) -> dict[str, Any]:
    return {
        "scope": budget.scope_key,
        "cap_micro": budget.cap_micro,
        "cap_tokens": budget.cap_tokens,
        "period": budget.period,
        "thresholds": budget.thresholds,
        "hard": budget.hard,
        "max_request_micro": budget.max_request_micro,
        "webhook_url": webhook_for_audit(budget.webhook_url),
    }


def webhook_for_audit(url: str | None) -> str | None:
    """The webhook as the audit log keeps it: its host and a fingerprint, never the whole URL.

    A webhook URL often is a credential (a Slack webhook's path, a token in the query):
    the budget keeps it, since the admin set it to be called, but the audit log, which
    many more people read and export, gets only where it points and whether it changed.
    """
    if not url:
        return url
    parts = urlsplit(url)
    fingerprint = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{parts.scheme}://{parts.hostname}/… (sha256 {fingerprint})"


def parse_thresholds(values: Any) -> tuple[int, ...]:
    """Percent thresholds from a list or "50, 80, 100": whole numbers in 1..100, sorted, unique."""
    if isinstance(values, str):
        parts = [p for p in re.split(r"[,\s]+", values.strip()) if p]
    else:
        parts = list(values or ())
    result = set()
    for part in parts:
        try:
            value = int(str(part).strip().rstrip("%"))
        except ValueError:
            raise ValidationError(f"Alert threshold {part!r} is not a whole percent") from None
        if not 1 <= value <= 100:
            raise ValidationError(f"Alert threshold {value}% is out of range: use 1 to 100 percent")
        result.add(value)
    return tuple(sorted(result))


def _money(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    micro = parse_dollars_to_micro(value)
    if micro <= 0:
        raise ValidationError(f"The {what} must be more than $0 (got {value})")
    return micro


def _validated(data: BudgetInput) -> dict[str, Any]:
    cap_micro = _money(data.cap_usd, "budget cap")
    cap_tokens = data.cap_tokens
    if cap_tokens is not None and (isinstance(cap_tokens, bool) or not isinstance(cap_tokens, int) or cap_tokens <= 0):
        raise ValidationError(f"The token cap must be a whole number above 0 (got {cap_tokens!r})")
    if cap_tokens is not None and cap_tokens > MAX_TOKEN_CAP:
        raise ValidationError(f"The token cap must be at most {MAX_TOKEN_CAP:,} tokens (got {cap_tokens:,})")
    if cap_micro is None and cap_tokens is None:
        raise ValidationError("A budget needs a cap in dollars, in tokens, or both")
    url = (data.webhook_url or "").strip() or None
    if url and not _URL.match(url):
        raise ValidationError(f"Webhook URL {url!r} must be an http(s) URL")
    return {
        "cap_micro": cap_micro,
        "cap_tokens": cap_tokens,
        "period": periods.check_period(data.period),
        "thresholds": ",".join(str(t) for t in parse_thresholds(data.thresholds)),
        "hard": bool(data.hard),
        "max_request_micro": _money(data.max_request_usd, "per-request cap"),
        "webhook_url": url,
    }


def _scope(session: Session, scope: str, target_id: int) -> dict[str, Any]:
    if scope == "team":
        get_or_not_found(session, Team, target_id, "team")
        return {"team_id": target_id}
    if scope == "person":
        get_or_not_found(session, Person, target_id, "person")
        return {"person_id": target_id}
    if scope == "prompt":
        if not isinstance(target_id, int) or target_id <= 0:
            raise ValidationError(f"No prompt with id {target_id!r}")
        return {"prompt_id": target_id}
    raise ValidationError(f"Unknown budget scope {scope!r}; choose one of: {', '.join(SCOPES)}")


def set_budget(*, session: Session, actor: Actor, scope: str, target_id: int, data: BudgetInput) -> Budget:
    """Create or change the budget of a team, person or prompt (one per target)."""
    require(actor, Permission.BUDGET_MANAGE)
    target = _scope(session, scope, target_id)
    values = _validated(data)
    key = f"{scope}:{target_id}"
    budget = session.exec(select(Budget).where(Budget.scope_key == key)).first()
    before = snapshot(budget) if budget else None
    if budget is None:
        budget = Budget(scope=scope, scope_key=key, **target)
    for name, value in values.items():
        setattr(budget, name, value)
    budget.updated_at = clock.now()
    try:
        with committing(session):
            session.add(budget)
            session.flush()
            record(
                session,
                actor=actor,
                action="budget.update" if before else "budget.create",
                target_type="budget",
                target_id=budget.id,
                team_id=budget.team_id,
                before=before,
                after=snapshot(budget),
            )
    except IntegrityError as error:
        raise Conflict(f"The {scope} already has a budget; edit that one") from error
    hot_cache.invalidate()
    return budget


def delete_budget(*, session: Session, actor: Actor, budget_id: int) -> None:
    require(actor, Permission.BUDGET_MANAGE)
    budget = get_budget(session, budget_id)
    before = snapshot(budget)
    with committing(session):
        session.delete(budget)
        record(
            session,
            actor=actor,
            action="budget.delete",
            target_type="budget",
            target_id=budget_id,
            team_id=budget.team_id,
            before=before,
            after=None,
        )
    hot_cache.invalidate()


def get_budget(session: Session, budget_id: int) -> Budget:
    return get_or_not_found(session, Budget, budget_id, "budget")


def list_budgets(session: Session) -> list[Budget]:
    return list(session.exec(select(Budget).order_by(col(Budget.scope), col(Budget.scope_key))))


@dataclass(frozen=True)
class BudgetRule:
    """A budget's settings, detached from the session (reservations roll back and retry)."""

    id: int
    scope: str
    scope_key: str
    team_id: int | None
    person_id: int | None
    prompt_id: int | None
    cap_micro: int | None
    cap_tokens: int | None
    period: str
    thresholds: str
    hard: bool
    max_request_micro: int | None
    webhook_url: str | None

    @classmethod
    def of(cls, budget: Budget) -> BudgetRule:
        return cls(
            budget.id,
            budget.scope,
            budget.scope_key,
            budget.team_id,
            budget.person_id,
            budget.prompt_id,
            budget.cap_micro,
            budget.cap_tokens,
            budget.period,
            budget.thresholds,
            budget.hard,
            budget.max_request_micro,
            budget.webhook_url,
        )


def applicable_budgets(
    session: Session, *, team_id: int, person_id: int | None, prompt_id: int | None
) -> list[BudgetRule]:
    """The budgets a call counts against, in id order (the lock order of reservations)."""
    keys = [f"team:{team_id}"]
    if person_id is not None:
        keys.append(f"person:{person_id}")
    if prompt_id is not None:
        keys.append(f"prompt:{prompt_id}")
    rows = session.exec(select(Budget).where(col(Budget.scope_key).in_(keys)).order_by(col(Budget.id)))
    return [BudgetRule.of(b) for b in rows]


# ---- team policy -----------------------------------------------------------------------


@dataclass(frozen=True)
class TeamPolicy:
    team_id: int
    allowed_models: tuple[str, ...]  # empty: every priced model
    lower_max_tokens: bool


def team_policy(session: Session, team_id: int) -> TeamPolicy:
    row = session.get(TeamBudgetPolicy, team_id)
    if row is None:
        return TeamPolicy(team_id, (), False)
    models = tuple(m for m in row.allowed_models.split(",") if m)
    return TeamPolicy(team_id, models, row.lower_max_tokens)


def set_team_policy(
    *,
    session: Session,
    actor: Actor,
    team_id: int,
    allowed_models: list[str] | None = None,
    lower_max_tokens: bool | None = None,
) -> TeamPolicy:
    """Which models a team may use (empty: all priced ones; admins), and whether calls that do
    not fit get fewer tokens (finance and admins). None leaves that part as it is."""
    if allowed_models is not None:
        require(actor, Permission.MODEL_MANAGE)
    if lower_max_tokens is not None:
        require(actor, Permission.BUDGET_MANAGE)
    if allowed_models is None and lower_max_tokens is None:
        raise ValidationError("Nothing to change: give the allowed models, the max_tokens choice, or both")
    get_or_not_found(session, Team, team_id, "team")
    before = team_policy(session, team_id)
    if allowed_models is None:
        models = list(before.allowed_models)
    else:
        book = price_book(session)
        known = set(book.models()) | set(book.aliases())
        models = sorted({m.strip() for m in allowed_models if m and m.strip()})
        unknown = [m for m in models if m not in known]
        if unknown:
            raise ValidationError(f"Unknown model(s) in the allow-list: {', '.join(unknown)} (no price for them)")
    if lower_max_tokens is None:
        lower_max_tokens = before.lower_max_tokens
    row = session.get(TeamBudgetPolicy, team_id) or TeamBudgetPolicy(team_id=team_id)
    row.allowed_models = ",".join(models)
    row.lower_max_tokens = bool(lower_max_tokens)
    row.updated_at = clock.now()
    with committing(session):
        session.add(row)
        record(
            session,
            actor=actor,
            action="team.budget_policy.update",
            target_type="team",
            target_id=team_id,
            team_id=team_id,
            before={"allowed_models": list(before.allowed_models), "lower_max_tokens": before.lower_max_tokens},
            after={"allowed_models": models, "lower_max_tokens": row.lower_max_tokens},
        )
    hot_cache.invalidate()
    return team_policy(session, team_id)
