"""What each role's Home reads from core: the figures a person acts on, and nothing of what
their roles may not see."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import update

from core import attention, clock
from core.audit import home as audit_home
from core.audit import verify
from core.budgets import home as budget_home
from core.budgets import rollups
from core.catalog import home as catalog_home
from core.catalog import store, workflow
from core.catalog.spec import PromptSpec
from core.errors import PermissionDenied
from core.gateway.attention import held_waiting
from core.identity import keys
from core.identity import people as identity
from core.identity.key_rotation import keys_due
from core.models.budgets import UsageRecord
from core.models.keys import ApiKey
from core.permissions import Role
from core.settings import reset_settings
from tests.budget_support import make_budget, team_id

TOM, MEI = "tom.becker@example.com", "mei.chen@example.com"
LENA, RAFAEL = "lena.fischer@example.com", "rafael.gomez@example.com"
NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)


@pytest.fixture
def frozen():
    clock.set_clock(lambda: NOW)
    yield NOW
    clock.set_clock(None)


def spend(session, team: int, cost_micro: int, at: datetime, key_id: int | None = None) -> None:
    row = UsageRecord(occurred_at=at, team_id=team, key_id=key_id, model="gpt-4o-mini", cost_micro=cost_micro)
    session.add(row)
    session.flush()
    rollups.add_ledger_rows(session.connection(), [row.model_dump()])
    session.commit()


# ---- finance ------------------------------------------------------------------------------


def test_month_to_date_sets_each_teams_spend_against_its_monthly_budget(session, directory, frozen):
    support, legal = team_id(session, "Support"), team_id(session, "Legal")
    make_budget(session, support, cap="100")
    make_budget(session, legal, cap="20", period="week")  # not a monthly budget: not set against the month
    spend(session, support, 30_000_000, NOW - timedelta(days=2))
    spend(session, support, 5_000_000, datetime(2026, 10, 31, 23, tzinfo=UTC))  # last month: not counted
    spend(session, legal, 1_234_560_000, NOW - timedelta(hours=1))

    month = budget_home.month_to_date(session, actor=directory.with_role(Role.FINANCE))

    assert (month.period_key, month.days) == ("2026-11", 20)
    rows = {t.team: t for t in month.teams}
    assert (rows["Support"].spent_micro, rows["Support"].budget_micro, rows["Support"].used) == (
        30_000_000,
        100_000_000,
        0.3,
    )
    assert (rows["Legal"].spent_micro, rows["Legal"].budget_micro) == (1_234_560_000, None)
    assert rows["Marketing"].spent_micro == 0  # every team is listed, spending or not
    assert month.teams[0].team == "Support"  # nearest its limit first
    assert month.spent_micro == 1_264_560_000


def test_top_movers_compare_with_the_same_days_of_last_month(session, directory, frozen):
    support, data = team_id(session, "Support"), team_id(session, "Data")
    admin = directory.admin
    key = keys.create_key(session=session, actor=admin, team_id=data, label="nightly batch")
    spend(session, support, 10_000_000, datetime(2026, 11, 3, tzinfo=UTC))
    spend(session, support, 2_000_000, datetime(2026, 10, 3, tzinfo=UTC))  # same days last month
    spend(session, support, 50_000_000, datetime(2026, 10, 25, tzinfo=UTC))  # later last month: not compared
    spend(session, data, 7_000_000, datetime(2026, 11, 10, tzinfo=UTC), key_id=key.key_id)
    spend(session, team_id(session, "Legal"), 9_000_000, datetime(2026, 10, 5, tzinfo=UTC))  # shrank: no mover

    movers = budget_home.month_to_date(session, actor=directory.with_role(Role.FINANCE)).movers

    assert [(m.kind, m.name, m.growth_micro) for m in movers] == [
        ("Team", "Support", 8_000_000),
        ("Team", "Data", 7_000_000),
        ("API key", f"nightly batch ({key.prefix}…) of Data", 7_000_000),
    ]
    assert (movers[0].now_micro, movers[0].before_micro) == (10_000_000, 2_000_000)


def test_spend_on_home_needs_spend_reading(session, directory):
    with pytest.raises(PermissionDenied):
        budget_home.month_to_date(session, actor=directory.with_role(Role.PROMPT_ENGINEER))


# ---- governance and engineers -------------------------------------------------------------


def _submitted(
    session, directory, simple_version, name: str, author: str = TOM, team: str = "Support", risk: str = "medium"
) -> int:
    spec = PromptSpec(name, team, "Answer product questions", risk, "internal")
    version = store.create_prompt(
        session=session, actor=directory.by_email(author), prompt=spec, version=simple_version
    )
    workflow.submit(session=session, actor=directory.by_email(author), version_id=version.id)
    return version.id


def test_the_review_queue_is_oldest_first_without_own_or_already_reviewed_versions(session, directory, simple_version):
    older = _submitted(session, directory, simple_version, "older-one")
    newer = _submitted(session, directory, simple_version, "newer-one")
    lena = identity.person_by_email(session, LENA)
    identity.grant_role(session=session, actor=directory.admin, person_id=lena.id, role="prompt_engineer")
    by_lena = _submitted(session, directory, simple_version, "lenas-own", author=LENA, team="Legal")
    reviewed = _submitted(session, directory, simple_version, "reviewed-one", risk="high")
    workflow.approve(session=session, actor=directory.by_email(LENA), version_id=reviewed, comment="One of two.")
    ten_days_ago = clock.now() - timedelta(days=10)
    session.exec(
        update(store.PromptVersion).where(store.PromptVersion.id == older).values(state_changed_at=ten_days_ago)
    )
    session.commit()

    queue = catalog_home.review_queue_by_age(session, actor=directory.by_email(LENA))

    assert [(r.prompt, r.waiting_days) for r in queue] == [("older-one", 10), ("newer-one", 0)]
    assert (queue[0].team, queue[0].author, queue[0].approvals) == ("Support", "Tom Becker", "0 of 1")
    rafael = catalog_home.review_queue_by_age(session, actor=directory.by_email(RAFAEL))
    assert [r.prompt for r in rafael] == ["older-one", "newer-one", "lenas-own", "reviewed-one"]
    assert rafael[-1].approvals == "1 of 2"
    assert by_lena and newer
    with pytest.raises(PermissionDenied):
        catalog_home.review_queue_by_age(session, actor=directory.by_email(TOM))


def test_an_engineer_sees_own_versions_in_review_or_sent_back_with_the_last_word(session, directory, simple_version):
    waiting = _submitted(session, directory, simple_version, "waiting-one")
    sent_back = _submitted(session, directory, simple_version, "sent-back")
    _submitted(session, directory, simple_version, "meis-own", author=MEI, team="Marketing")
    workflow.request_changes(
        session=session, actor=directory.by_email(LENA), version_id=sent_back, comment="Say *which* policy."
    )

    mine = catalog_home.own_versions_in_flight(session, actor=directory.by_email(TOM))

    assert [(v.prompt, v.state) for v in mine] == [("sent-back", "Changes requested"), ("waiting-one", "In review")]
    assert mine[0].last_review == "Lena Fischer: Say *which* policy."
    assert mine[1].last_review == "" and waiting


def test_held_requests_waiting_are_counted_with_the_oldest_for_reviewers_only(session, directory, frozen):
    from core.gateway import held

    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    assert (held_waiting(session, actor=lead).count, held_waiting(session, actor=lead).oldest_since) == (0, None)
    for hours_ago, request in ((5, "r1"), (1, "r2")):
        row = held.new_hold(team_id=team_id(session), request_id=request, kind="input", rule="moderation", findings=[])
        row.created_at = NOW - timedelta(hours=hours_ago)
        session.add(row)
    session.commit()

    waiting = held_waiting(session, actor=lead)

    assert (waiting.count, waiting.oldest_since) == (2, NOW - timedelta(hours=5))
    assert [a.title for a in attention.open_alerts(session, lead)] == ["2 held requests waiting for a decision"]
    assert attention.open_alerts(session, directory.with_role(Role.FINANCE)) == []
    with pytest.raises(PermissionDenied):
        held_waiting(session, actor=directory.with_role(Role.FINANCE))


# ---- auditors -----------------------------------------------------------------------------


def test_the_audit_standing_says_what_changed_since_the_last_verification(session, directory, monkeypatch):
    from core.audit.checkpoints import new_key_pair

    private, _public = new_key_pair()
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", private)
    reset_settings()
    auditor = directory.with_role(Role.AUDITOR)
    before = audit_home.audit_standing(session, actor=auditor)
    assert before.last_verified is None and before.head_seq > 0

    result = verify.verify_chain(session=session, actor=auditor, checkpoint=True, workers=1)
    assert result.ok
    session.rollback()
    standing = audit_home.audit_standing(session, actor=auditor)
    assert standing.signed
    assert standing.last_verified is not None
    assert (standing.last_verified.seq, standing.last_verified.events_since) == (standing.head_seq, 0)

    identity.create_team(session=session, actor=directory.admin, name="Research")
    session.rollback()
    later = audit_home.audit_standing(session, actor=auditor)
    assert later.last_verified is not None and later.last_verified.events_since == later.head_seq - standing.head_seq
    assert later.last_verified.events_since >= 1
    with pytest.raises(PermissionDenied):
        audit_home.audit_standing(session, actor=directory.with_role(Role.PROMPT_ENGINEER))


# ---- admins -------------------------------------------------------------------------------


def test_keys_due_for_rotation_or_expiry_most_urgent_first(session, directory):
    admin = directory.admin
    support, data = team_id(session, "Support"), team_id(session, "Data")
    fresh = keys.create_key(session=session, actor=admin, team_id=support, label="fresh")
    ageing = keys.create_key(session=session, actor=admin, team_id=support, label="ageing")
    overdue = keys.create_key(session=session, actor=admin, team_id=data, label="old")
    revoked = keys.create_key(session=session, actor=admin, team_id=data, label="gone")
    keys.create_key(session=session, actor=admin, team_id=data, label="short", expires_days=3)
    now = clock.now()
    for key, age in ((ageing, 80), (overdue, 95), (revoked, 200)):
        session.exec(
            update(ApiKey).where(ApiKey.id == key.key_id).values(created_at=now - timedelta(days=age, hours=1))
        )
    session.commit()
    keys.revoke_key(session=session, actor=admin, key_id=revoked.key_id)

    due = keys_due(session, actor=admin)

    assert [(k.team, k.name.split(" (")[0], k.reason) for k in due] == [
        ("Data", "old", "rotation overdue by 5 days"),
        ("Data", "short", "expires in 2 days"),
        ("Support", "ageing", "rotation due in 10 days"),
    ]
    assert fresh.prefix not in " ".join(k.name for k in due)
    with pytest.raises(PermissionDenied):
        keys_due(session, actor=directory.with_role(Role.AUDITOR))


def test_configuration_warnings_name_what_to_fix_and_only_admins_get_them(session, directory, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("QUORUM_AUDIT_SIGNING_KEY", raising=False)
    reset_settings()
    make_budget(session, team_id(session, "Support"))

    titles = [w.title for w in attention.configuration_warnings(session, directory.admin)]

    assert "Model calls are answered by the built-in simulator" in titles
    assert "The audit log has no signing key" in titles
    [unbudgeted] = [t for t in titles if t.startswith("No budget on")]
    assert "Support" not in unbudgeted and "Legal" in unbudgeted
    for role in (Role.AUDITOR, Role.FINANCE, Role.GOVERNANCE_LEAD, Role.PROMPT_ENGINEER):
        assert attention.configuration_warnings(session, directory.with_role(role)) == []
