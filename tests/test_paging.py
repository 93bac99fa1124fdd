"""Tables page instead of stopping at a cap: every row is reachable, each exactly once, and
the caption says where the page is among all of them."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from core.errors import PermissionDenied, ValidationError
from core.gateway import held
from core.identity import people as identity
from core.models.gateway import HeldRequest
from core.models.retention import SubjectRequest
from core.permissions import Role
from core.retention import privacy
from tests.test_pages import EMAIL_BY_ROLE, signed_in

# More than the 500 rows the Held requests page used to stop at.
DECIDED, PENDING = 523, 45


@pytest.fixture
def holds(session, directory):
    team = identity.team_by_name(session, "Support").id
    rows = [
        {
            "public_id": f"held_{i:05d}",
            "request_id": f"req_{i:05d}",
            "team_id": team,
            "kind": "input",
            "rule": "moderation",
            "status": "pending" if i % 12 == 0 and i // 12 < PENDING else ("released" if i % 2 else "denied"),
            "comment": f"decision {i}",
        }
        for i in range(DECIDED + PENDING)
    ]
    session.execute(insert(HeldRequest.__table__), rows)
    session.commit()
    pending = sorted((r["public_id"] for r in rows if r["status"] == "pending"), reverse=True)
    decided = sorted((r["public_id"] for r in rows if r["status"] != "pending"), reverse=True)
    assert (len(pending), len(decided)) == (PENDING, DECIDED)
    return {"pending": pending, "decided": decided}


def walk(session, actor, *, decided: bool, limit: int) -> tuple[list[str], list[str]]:
    seen, captions, before = [], [], None
    while True:
        page = held.held_page(session, actor=actor, decided=decided, before=before, limit=limit)
        seen += [h.public_id for h in page.items]
        captions.append(page.caption)
        if page.older is None:
            return seen, captions
        before = page.older


def test_paging_reaches_every_held_request_once_newest_first(session, directory, holds):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    seen, captions = walk(session, lead, decided=True, limit=50)
    assert seen == holds["decided"]  # all 523, none twice, newest first
    assert captions[0] == f"1–50 of {DECIDED}" and captions[-1] == f"501–{DECIDED} of {DECIDED}"
    seen, _ = walk(session, lead, decided=False, limit=20)
    assert seen == holds["pending"]


def test_paging_checks_the_permission_and_the_page_size(session, directory, holds):
    with pytest.raises(PermissionDenied):
        held.held_page(session, actor=directory.with_role(Role.FINANCE), decided=True)
    with pytest.raises(ValidationError):
        held.held_page(session, actor=directory.with_role(Role.GOVERNANCE_LEAD), decided=True, limit=0)


def test_the_held_requests_page_pages_through_every_decided_request(session, directory, holds):
    at = signed_in(session, EMAIL_BY_ROLE[Role.GOVERNANCE_LEAD])
    at.switch_page("pages/held_requests.py").run()
    seen: list[str] = []
    for _ in range(DECIDED // 50 + 1):
        assert not at.exception, at.exception
        table = at.dataframe[-1].value
        seen += list(table["Id"])
        if at.button(key="decided_older").disabled:
            break
        at.button(key="decided_older").click().run()
    assert seen == holds["decided"]
    assert f"501–{DECIDED} of {DECIDED}" in [c.value for c in at.caption]
    at.button(key="decided_newer").click().run()
    assert list(at.dataframe[-1].value["Id"]) == holds["decided"][450:500]
    # Waiting requests page too (20 panels at a time).
    assert len([b for b in at.button if b.key and b.key.startswith("release_")]) == 20
    assert f"1–20 of {PENDING}" in [c.value for c in at.caption]


def test_subject_requests_page_past_the_newest_fifty(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    session.execute(
        insert(SubjectRequest.__table__),
        [{"kind": "access", "subject_ref": f"person:{i}", "actor": "system:test"} for i in range(130)],
    )
    session.commit()
    refs, before = [], None
    while True:
        page = privacy.requests_page(session, actor=lead, before=before)
        refs += [r.subject_ref for r in page.items]
        if page.older is None:
            break
        before = page.older
    assert refs == [f"person:{i}" for i in reversed(range(130))]
