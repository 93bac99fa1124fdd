"""The page query's index-friendly paths give exactly the events the plain filters describe."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from core import clock
from core.audit import export as audit_export
from core.audit import query as audit_query
from core.audit.query import AuditFilter
from core.audit.record import committing, record
from core.settings import reset_settings
from tests.audit_helpers import SYSTEM

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ACTIONS = [
    "budget.set",
    "budget.alert.ack",
    "budgets.report.send",
    "budget.zz",
    "team.create",
    "team.rename",
    "prompt.version.approve",
    "gateway.call",
    "retention.policy.set",
]


@pytest.fixture(autouse=True)
def checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    reset_settings()


@pytest.fixture
def mixed(session):
    """120 events of assorted actions and teams, in time order but for a few written late (clock skew)."""
    rng = random.Random(5)
    for i in range(120):
        skew = -timedelta(hours=30) if i % 17 == 0 else timedelta(0)
        clock.set_clock(lambda i=i, skew=skew: T0 + timedelta(hours=i) + skew)
        with committing(session):
            record(
                session,
                actor=SYSTEM,
                action=rng.choice(ACTIONS),
                target_type="thing",
                target_id=i,
                team_id=rng.choice([1, 2, None]),
            )
    clock.set_clock(None)
    return [e for e in audit_query.search(session, actor=SYSTEM, filters=AuditFilter(), limit=1000).events]


def matches(event, include, exclude, since=None, until=None, team_id=None) -> bool:
    def hit(term):
        return event.action.startswith(term.rstrip("*")) if term.endswith((".", "*")) else event.action == term

    return (
        (not include or any(hit(t) for t in include))
        and not any(hit(t) for t in exclude)
        and (since is None or event.occurred_at >= since)
        and (until is None or event.occurred_at < until)
        and (team_id is None or event.team_id == team_id)
    )


def every_page(session, filters: AuditFilter, size: int) -> list[int]:
    seen, cursor = [], None
    while True:
        page = audit_query.search(session, actor=SYSTEM, filters=filters, before_seq=cursor, limit=size)
        seen += [e.seq for e in page.events]
        if page.older is None:
            return seen
        cursor = page.older


CASES = [
    dict(action="budget."),
    dict(action="budget*"),
    dict(action="budget. -budget.alert."),
    dict(action="budget. team.create"),
    dict(action="budget., team. -team.rename"),
    dict(action="nothing.here"),
    dict(action="zzz."),
    dict(action="-gateway."),
    dict(action="budget.", team_id=2),
    dict(since=T0 + timedelta(hours=20), until=T0 + timedelta(hours=40)),
    dict(since=T0 + timedelta(hours=20), until=T0 + timedelta(hours=40), action="budget. -budget.zz"),
    dict(since=T0 + timedelta(hours=50), until=T0 + timedelta(hours=52), team_id=1),
    dict(since=T0 - timedelta(days=30), until=T0 - timedelta(days=29)),
    dict(since=T0 + timedelta(hours=60)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_each_path_gives_the_plain_filter_semantics_on_every_page(session, mixed, case):
    include, exclude = audit_query.action_terms(case.get("action"))
    expected = [
        e.seq for e in mixed if matches(e, include, exclude, case.get("since"), case.get("until"), case.get("team_id"))
    ]
    filters = AuditFilter(**case)
    assert every_page(session, filters, 7) == expected
    assert every_page(session, filters, 1000) == expected
    exported = audit_export.parse(
        audit_export.export_bytes(session=session, actor=SYSTEM, filters=filters, fmt="jsonl").decode().splitlines(),
        "jsonl",
    )
    assert [r["seq"] for r in reversed(exported)] == expected


def test_a_prefix_does_not_match_a_longer_word(session, mixed):
    shown = {
        e.action
        for e in audit_query.search(session, actor=SYSTEM, filters=AuditFilter(action="budget."), limit=1000).events
    }
    assert shown == {"budget.set", "budget.alert.ack", "budget.zz"}
