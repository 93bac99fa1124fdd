"""The catalog's parts of Home: a governance lead's review queue by age, and a prompt
engineer's own versions that wait for review or came back with requested changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core import clock
from core.catalog import approvals
from core.catalog.store import CHANGES_REQUESTED, IN_REVIEW
from core.catalog.workflow import is_author, required_approvals, reviews_of
from core.db import saved_id
from core.models.catalog import Prompt, PromptVersion
from core.models.identity import Person, Team
from core.permissions import Actor, Permission, require

STATE_WORDS = {IN_REVIEW: "In review", CHANGES_REQUESTED: "Changes requested"}


@dataclass(frozen=True)
class WaitingReview:
    prompt: str
    version: int
    team: str
    risk_tier: str
    author: str
    submitted_at: datetime
    waiting_days: int
    approvals: str  # "1 of 2"


@dataclass(frozen=True)
class OwnVersion:
    prompt: str
    version: int
    state: str  # as people say it: "In review", "Changes requested"
    since: datetime
    last_review: str  # who said what last, or "" before any review


def review_queue_by_age(session: Session, *, actor: Actor) -> list[WaitingReview]:
    """Versions in review that `actor` may still decide on (not their own, not yet reviewed
    by them), the longest waiting first."""
    require(actor, Permission.PROMPT_REVIEW)
    now = clock.now()
    teams, people = _team_names(session), _person_names(session)
    waiting = []
    query = (
        select(PromptVersion, Prompt)
        .join(Prompt, col(Prompt.id) == col(PromptVersion.prompt_id))
        .where(PromptVersion.state == IN_REVIEW)
        .order_by(col(PromptVersion.state_changed_at), col(PromptVersion.id))
    )
    for version, prompt in session.exec(query):
        version_id = saved_id(version)
        counted = approvals.approvers(session, version_id)
        reviewed = {r.reviewer_ref for r in reviews_of(session, version_id)} | counted
        if is_author(session, actor, version) or actor.ref in reviewed:
            continue
        waiting.append(
            WaitingReview(
                prompt=prompt.name,
                version=version.number,
                team=teams.get(prompt.team_id, "—"),
                risk_tier=prompt.risk_tier,
                author=people.get(version.author_person_id or -1, "a former member"),
                submitted_at=version.state_changed_at,
                waiting_days=max((now - version.state_changed_at).days, 0),
                approvals=f"{len(counted)} of {required_approvals(version, prompt)}",
            )
        )
    return waiting


def own_versions_in_flight(session: Session, *, actor: Actor, limit: int = 10) -> list[OwnVersion]:
    """`actor`'s own versions in review or sent back, the most recently moved first."""
    require(actor, Permission.PROMPT_WRITE)
    people = _person_names(session)
    mine = []
    query = (
        select(PromptVersion, Prompt)
        .join(Prompt, col(Prompt.id) == col(PromptVersion.prompt_id))
        .where(col(PromptVersion.state).in_([IN_REVIEW, CHANGES_REQUESTED]))
        .order_by(col(PromptVersion.state_changed_at).desc(), col(PromptVersion.id).desc())
    )
    for version, prompt in session.exec(query):
        if not is_author(session, actor, version):
            continue
        reviews = reviews_of(session, saved_id(version))
        last = max(reviews, key=lambda r: (r.created_at, r.id or 0)) if reviews else None
        said = ""
        if last is not None:
            said = f"{people.get(last.reviewer_person_id or -1, 'a reviewer')}: {last.comment}"
        mine.append(OwnVersion(prompt.name, version.number, STATE_WORDS[version.state], version.state_changed_at, said))
        if len(mine) == limit:
            break
    return mine


def _team_names(session: Session) -> dict[int, str]:
    return {saved_id(t): t.name for t in session.exec(select(Team))}


def _person_names(session: Session) -> dict[int, str]:
    return {saved_id(p): p.display_name for p in session.exec(select(Person))}
