"""Who a data-subject request is about: a person of the directory (by e-mail) or an
application's end user (by the id sent in a request's `user` field), and which gateway
requests are theirs.

A subject's name or e-mail is matched exactly, as a whole token (core.retention.mentions):
a name such as "%" or "_" matches only itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from sqlmodel import Session, col, select

from core.errors import NotFound, ValidationError
from core.models.gateway import GatewayCall, StoredPayload
from core.models.identity import Person
from core.retention.mentions import may_mention, mentions, token_pattern

Item = TypeVar("Item")


@dataclass(frozen=True)
class Subject:
    ref: str  # person:12 | end_user:<hash>
    person: Person | None = None
    end_user: str | None = None

    @property
    def needles(self) -> list[str]:
        if self.person is not None:
            return [n for n in (self.person.email, self.person.display_name) if n and len(n) >= 3]
        return []


def find_subject(session: Session, *, email: str | None = None, end_user: str | None = None) -> Subject:
    if bool(email) == bool(end_user):
        raise ValidationError("Name the subject by exactly one of: e-mail, end-user id")
    if email:
        person = session.exec(select(Person).where(Person.email == email.strip().lower())).first()
        if person is None:
            raise NotFound("No person with that e-mail address")
        return Subject(ref=f"person:{person.id}", person=person)
    end_user = (end_user or "").strip()
    if not end_user:
        raise ValidationError("The end-user id is empty")
    return Subject(ref="end_user:" + hashlib.sha256(end_user.encode()).hexdigest()[:16], end_user=end_user)


def subject_request_ids(session: Session, subject: Subject) -> set[str]:
    ids: set[str] = set()
    if subject.person is not None:
        ids |= set(session.exec(select(GatewayCall.request_id).where(GatewayCall.actor == subject.ref)))
        pattern = token_pattern(subject.needles)
        if pattern is not None:
            candidates = session.exec(
                select(StoredPayload.request_id, StoredPayload.request_json, StoredPayload.response_json).where(
                    may_mention(col(StoredPayload.request_json), subject.needles)
                    | may_mention(col(StoredPayload.response_json), subject.needles)
                )
            )
            ids |= {
                rid
                for rid, request, response in candidates
                if mentions(request, pattern) or mentions(response, pattern)
            }
    else:
        marker = json.dumps({"user": subject.end_user})[1:-1]  # "user": "<id>" exactly as stored
        ids |= set(
            session.exec(
                select(StoredPayload.request_id).where(
                    col(StoredPayload.request_json).contains(marker, autoescape=True)
                )
            )
        )
    return ids


def chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    """`items` in lists of at most `size` (IN lists stay under the databases' parameter limits)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
