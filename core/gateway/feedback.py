"""Feedback on gateway answers: an application rates an answer by the request id it got back.

Stored next to the call log, so live A/B comparisons can put user satisfaction beside
latency, cost and errors. A team may rate only its own requests. A low score on a catalog
prompt's answer queues it for review after delivery (core.gateway.catches).
"""

from __future__ import annotations

import math

from sqlmodel import Session, select

from core import clock
from core.audit.record import committing, record
from core.errors import NotFound, ValidationError
from core.gateway.catches import queue_low_feedback
from core.guardrails.saved_text import refuse_secrets
from core.models.experiments import RequestFeedback
from core.models.gateway import GatewayCall
from core.permissions import Actor

MAX_COMMENT = 2000


def record_feedback(
    *,
    session: Session,
    actor: Actor,
    team_id: int,
    key_id: int | None,
    request_id: object,
    score: object,
    comment: object = None,
) -> RequestFeedback:
    """Store a score from 0 to 1 (and an optional comment) for one of the team's requests."""
    if not isinstance(request_id, str) or not request_id.strip():
        raise ValidationError("'request_id' must be the request id the gateway returned (x-request-id)")
    if (
        isinstance(score, bool)
        or not isinstance(score, (int, float))
        or not math.isfinite(score)
        or not 0 <= score <= 1
    ):
        raise ValidationError("'score' must be a number from 0 to 1")
    if comment is not None and not isinstance(comment, str):
        raise ValidationError("'comment' must be text")
    comment = (comment or "").strip()
    refuse_secrets(comment, field="the feedback comment")
    if len(comment) > MAX_COMMENT:
        raise ValidationError(f"'comment' may be at most {MAX_COMMENT} characters")
    call = session.exec(select(GatewayCall).where(GatewayCall.request_id == request_id.strip())).first()
    if call is None or call.team_id != team_id:
        raise NotFound(f"No request {request_id.strip()!r} for this team")
    row = RequestFeedback(
        request_id=call.request_id,
        team_id=team_id,
        key_id=key_id,
        score=float(score),
        comment=comment,
        created_at=clock.now(),
    )
    with committing(session):
        session.add(row)
        queued = queue_low_feedback(session, call, row.score)
        session.flush()
        # The comment is the end user's words: it stays out of the audit log.
        record(
            session,
            actor=actor,
            action="gateway.feedback",
            target_type="gateway_request",
            target_id=call.request_id,
            team_id=team_id,
            after={"feedback_id": row.id, "score": row.score, **({"queued_for_review": True} if queued else {})},
        )
    return row
