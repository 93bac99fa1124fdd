"""The write-back of escalation catches: one ``escalation_catch`` row per call a prompt
version's rule held, blocked or queued for review after delivery; and the answers users
scored low, queued for review the same way.

It joins the settle's write-back (core.gateway.writeback), so a catch is committed with
its call, its held request and its audit event, or not at all. A call's rule column says
which escalation rule won (``escalation.<name>``) and its status says what it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, select

from core.gateway.escalation import RULE_PREFIX
from core.models.escalation import EscalationCatch
from core.models.gateway import GatewayCall

PENDING_REVIEW = "pending"
# A feedback score at or below this is a user's catch: the answer joins the review queue.
LOW_FEEDBACK = 0.25
# The call's status -> the action that produced it.
_ACTION_OF_STATUS = {"held": "hold", "blocked": "block", "ok": "review_after"}
_INSERT = insert(EscalationCatch.__table__)


def catch_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    caught = []
    for row in rows:
        rule, action = row.get("rule") or "", _ACTION_OF_STATUS.get(row["status"])
        if not rule.startswith(RULE_PREFIX) or action is None:
            continue
        caught.append(
            {
                "request_id": row["request_id"],
                "team_id": row["team_id"],
                "prompt_name": row["prompt_name"] or "",
                "prompt_version": row["prompt_version"] or "",
                "rule": rule[:80],
                "action": action,
                "created_at": row["created_at"],
                "review_status": PENDING_REVIEW if action == "review_after" else "",
                "expected": "",
            }
        )
    return caught


def write_catches(session: Session, calls: Sequence[Any]) -> None:
    rows = catch_rows([c.row for c in calls])
    if rows:
        session.connection().execute(_INSERT, rows)


def queue_low_feedback(session: Session, call: GatewayCall, score: float) -> bool:
    """Queue a prompt call's answer for review after a user scored it low (in the caller's
    transaction); False when the score is not low, the call ran no catalog prompt, or the
    answer is already queued."""
    if score > LOW_FEEDBACK or not call.prompt_name:
        return False
    queued = session.exec(
        select(EscalationCatch.id).where(
            EscalationCatch.request_id == call.request_id, EscalationCatch.review_status == PENDING_REVIEW
        )
    ).first()
    if queued is not None:
        return False
    session.add(
        EscalationCatch(
            request_id=call.request_id,
            team_id=call.team_id,
            prompt_name=call.prompt_name,
            prompt_version=call.prompt_version or "",
            rule="feedback",
            action="feedback",
            review_status=PENDING_REVIEW,
        )
    )
    return True
