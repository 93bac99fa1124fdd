"""Live A/B: a governance lead splits a prompt's production traffic between two approved versions.

Each end user (or, without a user id, each request) is assigned by a stable hash:
``sha256("<prompt id>:<key>") mod 100``; buckets below ``percent_b`` get version B, the
rest version A. The same user therefore always sees the same version while the split
holds, and the shares converge on the approved percentages. ``resolve`` applies the
prompt's active split when the gateway passes an ``assignment_key``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from core import clock
from core.audit.record import committing, record
from core.catalog.store import APPROVED, get_prompt, get_version, label_of
from core.db import saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.models.experiments import TrafficSplit
from core.permissions import Actor, Permission, require


@dataclass(frozen=True)
class SplitView:
    id: int
    prompt_id: int
    version_a_id: int
    version_b_id: int
    version_a_number: int
    version_b_number: int
    percent_b: int
    approved_by: str
    created_at: object


def bucket(prompt_id: int, key: str) -> int:
    """0..99, stable for a prompt and a key."""
    digest = hashlib.sha256(f"{prompt_id}:{key}".encode()).hexdigest()
    return int(digest, 16) % 100


def assigned_version(split: TrafficSplit, key: str) -> int:
    return split.version_b_id if bucket(split.prompt_id, key) < split.percent_b else split.version_a_id


def active_split(session: Session, prompt_id: int) -> TrafficSplit | None:
    return session.exec(
        select(TrafficSplit)
        .where(TrafficSplit.prompt_id == prompt_id, TrafficSplit.active)
        .order_by(col(TrafficSplit.id).desc())
    ).first()


def approve_split(
    *, session: Session, actor: Actor, prompt_id: int, version_a_id: int, version_b_id: int, percent_b: int
) -> TrafficSplit:
    """Start (or replace) the prompt's split: ``percent_b``% of users get B, the rest A."""
    require(actor, Permission.PROMPT_REVIEW)
    prompt = get_prompt(session, prompt_id)
    if isinstance(percent_b, bool) or not isinstance(percent_b, int) or not 1 <= percent_b <= 99:
        raise ValidationError("The share of version B must be a whole percentage from 1 to 99")
    if version_a_id == version_b_id:
        raise ValidationError("A split needs two different versions")
    versions = [get_version(session, v) for v in (version_a_id, version_b_id)]
    for version in versions:
        if version.prompt_id != prompt.id:
            raise ValidationError(f"Version id {version.id} is not a version of {prompt.name!r}")
        if version.state != APPROVED:
            raise Conflict(
                f"{label_of(version, prompt)} is {version.state.replace('_', ' ')}; only approved "
                "versions can receive live traffic"
            )
    previous = active_split(session, saved_id(prompt))
    split = TrafficSplit(
        prompt_id=saved_id(prompt),
        version_a_id=version_a_id,
        version_b_id=version_b_id,
        percent_b=percent_b,
        approved_by=actor.ref,
        created_at=clock.now(),
    )
    with committing(session):
        if previous is not None:
            previous.active, previous.ended_at = False, clock.now()
            session.add(previous)
        session.add(split)
        session.flush()
        record(
            session,
            actor=actor,
            action="prompt.traffic_split.approve",
            target_type="prompt",
            target_id=saved_id(prompt),
            team_id=prompt.team_id,
            before=_snapshot(previous) if previous else None,
            after=_snapshot(split),
        )
    return split


def end_split(*, session: Session, actor: Actor, prompt_id: int) -> None:
    """Stop the split: all traffic goes back to the production label."""
    require(actor, Permission.PROMPT_REVIEW)
    prompt = get_prompt(session, prompt_id)
    split = active_split(session, saved_id(prompt))
    if split is None:
        raise NotFound(f"{prompt.name!r} has no live split")
    with committing(session):
        split.active, split.ended_at = False, clock.now()
        session.add(split)
        record(
            session,
            actor=actor,
            action="prompt.traffic_split.end",
            target_type="prompt",
            target_id=saved_id(prompt),
            team_id=prompt.team_id,
            before=_snapshot(split),
            after=None,
        )


def split_view(session: Session, *, actor: Actor, prompt_id: int) -> SplitView | None:
    require(actor, Permission.CATALOG_READ)
    split = active_split(session, prompt_id)
    if split is None:
        return None
    a, b = get_version(session, split.version_a_id), get_version(session, split.version_b_id)
    return SplitView(
        saved_id(split),
        split.prompt_id,
        saved_id(a),
        saved_id(b),
        a.number,
        b.number,
        split.percent_b,
        split.approved_by,
        split.created_at,
    )


def _snapshot(split: TrafficSplit) -> dict[str, Any]:
    return {
        "split_id": split.id,
        "version_a_id": split.version_a_id,
        "version_b_id": split.version_b_id,
        "percent_b": split.percent_b,
    }
