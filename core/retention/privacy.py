"""Data-subject requests, the door the pages and the command line use: access (one JSON
document of everything held, `subject_access`), erasure (`erasure`), and the list of
answered requests. Who the subject is and which requests are theirs: `subjects`."""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.models.retention import SubjectRequest
from core.paging import Page, keyset_page
from core.permissions import Actor, Permission, require
from core.retention.erasure import ERASED, ErasureResult, erase
from core.retention.subject_access import access_export, access_stream
from core.retention.subjects import Subject, find_subject

__all__ = [
    "ERASED",
    "ErasureResult",
    "Subject",
    "access_export",
    "access_stream",
    "erase",
    "find_subject",
    "recent_requests",
    "requests_page",
]


def recent_requests(session: Session, *, actor: Actor, limit: int = 50) -> list[SubjectRequest]:
    """The newest `limit` subject requests (the page pages through all of them: `requests_page`)."""
    return requests_page(session, actor=actor, limit=limit).items


def requests_page(
    session: Session, *, actor: Actor, before: int | None = None, limit: int = 50
) -> Page[SubjectRequest]:
    """A page of answered subject requests, newest first (`before`: the previous page's `older`)."""
    require(actor, Permission.RETENTION_READ)
    return keyset_page(
        session, select(SubjectRequest), col(SubjectRequest.id), before=before, limit=limit, convert=_same
    )


def _same(row: SubjectRequest) -> SubjectRequest:
    return row
