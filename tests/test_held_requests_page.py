"""What a governance lead judges a held request by: its text, when, which key of which team,
and for decided ones who decided and when, as names and local times."""

from __future__ import annotations

import json

from sqlmodel import select

from core import demo
from core.gateway import held
from core.models.gateway import HeldRequest
from core.permissions import Role
from core.settings import reset_settings
from tests.test_pages import EMAIL_BY_ROLE, errors_of, signed_in

LEAD = EMAIL_BY_ROLE[Role.GOVERNANCE_LEAD]


def in_berlin(monkeypatch) -> None:
    monkeypatch.setenv("QUORUM_TIMEZONE", "Europe/Berlin")
    reset_settings()


def the_demo_hold(session) -> HeldRequest:
    return session.exec(select(HeldRequest).where(HeldRequest.status == held.PENDING)).one()


def test_a_pending_hold_shows_its_text_time_key_and_team(demo_data, monkeypatch):
    session = demo_data
    in_berlin(monkeypatch)
    hold = the_demo_hold(session)
    at = signed_in(session, LEAD)
    at.switch_page("pages/held_requests.py").run()
    assert not at.exception and not errors_of(at)
    request = at.text_area(key=f"request_{hold.public_id}").value
    assert "I will kill the courier" in request
    heading = next(m.value for m in at.markdown if hold.public_id in m.value)
    assert "Support" in heading and ("CET" in heading or "CEST" in heading), heading
    assert any("Called with Help desk integration (Support)" in c.value for c in at.caption)


def test_a_decided_hold_names_who_decided_and_when(demo_data, monkeypatch):
    session = demo_data
    in_berlin(monkeypatch)
    hold = the_demo_hold(session)
    at = signed_in(session, LEAD)
    at.switch_page("pages/held_requests.py").run()
    at.text_input(key=f"comment_{hold.public_id}").input("A figure of speech; answer politely")
    at.button(key=f"deny_{hold.public_id}").click().run()
    assert not at.exception and not errors_of(at)
    decided = next(d.value for d in at.dataframe if "Decided by" in d.value.columns)
    row = decided[decided["Id"] == hold.public_id].iloc[0]
    lead_name = next(name for name, email, _roles, _teams in demo.PEOPLE if email == LEAD)
    assert row["Decided by"] == lead_name
    assert row["Caller"] == "Help desk integration" and row["Team"] == "Support"
    assert row["Decided"].endswith(("CET", "CEST")) and row["Held"].endswith(("CET", "CEST"))
    assert "I will kill the courier" in row["Request"]
    assert "person:" not in " ".join(str(v) for v in row.to_numpy())


def test_the_request_text_reads_any_endpoints_stored_body():
    parts = [{"type": "text", "text": "Call [PHONE_1]"}]
    body = json.dumps({"messages": [{"role": "system", "content": "Be kind"}, {"role": "user", "content": parts}]})
    assert held.request_text(body) == "system: Be kind\nuser: Call [PHONE_1]"
    assert held.request_text(json.dumps({"request": {"input": ["a", "b"]}, "findings": []})) == "a\nb"
    assert held.request_text('{"input": "one"}') == "one"
    assert held.request_text(None) == ""
    assert held.request_text("not json") == "not json"
