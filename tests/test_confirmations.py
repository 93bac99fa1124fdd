"""Destructive actions ask first, name what they act on, and do nothing when cancelled.

Each journey: the first click only asks (nothing changes), Cancel leaves everything as it was,
changing the selection drops the question, and "Yes, …" acts on the object the question named.
"""

from __future__ import annotations

from sqlmodel import select

from core.budgets import config
from core.identity import keys
from core.models.budgets import Budget
from core.models.keys import ApiKey
from core.models.retention import LegalHold
from core.permissions import Role
from core.retention import holds
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in


def _button(at, key):
    return next(b for b in at.button if b.key == key)


def _open(session, role, page):
    at = signed_in(session, EMAIL_BY_ROLE[role])
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_revoking_a_key_names_it_and_cancel_keeps_it(session, directory):
    created = keys.create_key(session=session, actor=directory.admin, team_id=1, label="billing-app")
    at = _open(session, Role.ADMIN, "pages/api_keys.py")
    _button(at, "revoke_key").click().run()
    [question] = [w.value.replace("\\", "") for w in at.warning]
    assert question.startswith(f"Revoke key {created.prefix}… (billing-app) of ")
    assert "cannot be undone" in question
    _button(at, "revoke_key_cancel").click().run()
    assert not at.warning
    session.rollback()
    assert session.exec(select(ApiKey)).one().revoked_at is None

    _button(at, "revoke_key").click().run()
    _button(at, "revoke_key_yes").click().run()
    assert not errors_of(at)
    session.rollback()
    assert session.exec(select(ApiKey)).one().revoked_at is not None


def test_removing_a_budget_asks_and_a_new_selection_drops_the_question(session, directory):
    for team_id in (1, 2):
        config.set_budget(
            session=session,
            actor=directory.admin,
            scope="team",
            target_id=team_id,
            data=config.BudgetInput(cap_usd="100"),
        )
    at = _open(session, Role.FINANCE, "pages/budgets.py")
    picker = at.selectbox(key="budget_delete_pick")
    first = picker.options[0]
    _button(at, "budget_delete").click().run()
    assert [w.value for w in at.warning][0].startswith(f"Remove the budget {first}?")
    # Picking another budget before answering: the question about the first one is gone.
    other = next(b.id for b in session.exec(select(Budget)).all() if b.id != picker.value)
    at.selectbox(key="budget_delete_pick").set_value(other).run()
    assert not [w for w in at.warning if w.value.startswith("Remove the budget")]
    assert not [b for b in at.button if b.key == "budget_delete_yes"]
    session.rollback()
    assert len(session.exec(select(Budget)).all()) == 2

    _button(at, "budget_delete").click().run()
    _button(at, "budget_delete_yes").click().run()
    assert not errors_of(at)
    session.rollback()
    assert len(session.exec(select(Budget)).all()) == 1


def test_releasing_a_hold_names_the_case_it_releases(session, directory):
    lead = directory.with_role(Role.GOVERNANCE_LEAD)
    for case in ("Older matter", "Acme v. Example"):
        holds.add_hold(session=session, actor=lead, case_name=case, owner_person_id=lead.person_id, team_id=1)
    at = _open(session, Role.GOVERNANCE_LEAD, "pages/retention.py")
    picker = at.selectbox(key="hold_release_id")
    picker.set_value(session.exec(select(LegalHold.id).where(LegalHold.case_name == "Acme v. Example")).one()).run()
    _button(at, "hold_release").click().run()
    [question] = [w.value for w in at.warning if w.value.startswith("Release legal hold")]
    assert "Acme v. Example?" in question and "may be deleted" in question
    _button(at, "hold_release_yes").click().run()
    assert not errors_of(at)
    session.rollback()
    released = {h.case_name for h in session.exec(select(LegalHold)).all() if h.released_at is not None}
    assert released == {"Acme v. Example"}
