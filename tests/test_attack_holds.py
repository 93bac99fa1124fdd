"""Legal holds and data-subject requests attacked by an insider with a role: erasure against
holds of every dimension, hostile names (`%`, `_`, `\\`) in subject look-ups, and retention
enforcement against each hold dimension for every record kind. Each asserts the kept records
and the message a user reads."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, text
from sqlmodel import select

from core import db
from core.catalog import store, workflow
from core.catalog.spec import PromptSpec
from core.cli.main import main as cli
from core.identity import people as identity
from core.models.audit import AuditEvent
from core.models.budgets import UsageRecord
from core.models.experiments import Experiment
from core.models.gateway import HeldRequest
from core.permissions import Actor
from core.retention import enforce, holds, privacy, rules
from tests.retention_support import T0, Clock, add_payloads, count, written

SYSTEM = Actor.system("test")
TOM, JONAS = "tom.becker@example.com", "jonas.berg@example.com"
LENA, RAFAEL = "lena.fischer@example.com", "rafael.gomez@example.com"


def ids(table: str, column: str, where: str = "1=1") -> list:
    with db.get_engine().connect() as conn:
        return sorted(r[0] for r in conn.execute(text(f"SELECT {column} FROM {table} WHERE {where}")))


def sql(statement: str, **params) -> None:
    with db.get_engine().begin() as conn:
        conn.execute(text(statement), params)


def person(session, email) -> Actor:
    session.rollback()
    return identity.actor_for_email(session, email)


def team_id(session, name) -> int:
    found = identity.team_by_name(session, name).id
    session.rollback()
    return found


def hold(session, *, case="Case 1", **scope):
    lead = person(session, LENA)
    return written(holds.add_hold, actor=lead, case_name=case, owner_person_id=lead.person_id, **scope)


def new_person(session, name: str, email: str) -> Actor:
    identity.add_person(
        session=session,
        actor=SYSTEM,
        email=email,
        display_name=name,
        roles=["prompt_engineer"],
        team_ids=[team_id(session, "Marketing")],
    )
    return person(session, email)


# ---- hostile names: exact matching in access and erasure ------------------------------------


HOSTILE = ["%%%", "___", "\\\\\\", "%_\\", "a%c"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_matches_only_itself_in_access_and_erasure(session, directory, name):
    lead = person(session, LENA)
    new_person(session, name, "hostile@example.com")
    add_payloads(3, at=T0, team_id=None, prefix="other", text="abc and 100% of a_c for x\\\\y")
    add_payloads(1, at=T0, team_id=None, prefix="named", text=json.dumps(f"please ask {name} today")[1:-1])
    doc = written(privacy.access_export, actor=lead, email="hostile@example.com")
    assert [p["request_id"] for p in doc["stored_payloads"]] == ["named0"]
    result = written(privacy.erase, actor=lead, email="hostile@example.com")
    assert result.counts["stored_payloads_deleted"] == 1
    assert ids("stored_payload", "request_id") == ["other0", "other1", "other2"]


def test_a_name_is_matched_as_a_whole_token_not_inside_longer_words(session, directory):
    lead = person(session, LENA)
    new_person(session, "Ann Lee", "ann.lee@example.com")
    add_payloads(1, at=T0, team_id=None, prefix="word", text="the Ann Leeds office and joann.lee@example.com")
    add_payloads(1, at=T0, team_id=None, prefix="line", text="Hello\\nAnn Lee, about ANN.LEE@EXAMPLE.COM.")
    doc = written(privacy.access_export, actor=lead, email="ann.lee@example.com")
    assert [p["request_id"] for p in doc["stored_payloads"]] == ["line0"]
    written(privacy.erase, actor=lead, email="ann.lee@example.com")
    assert ids("stored_payload", "request_id") == ["word0"]


@pytest.mark.parametrize("user", ["%", "_", "\\"])
def test_a_hostile_end_user_id_matches_only_itself(session, directory, user):
    lead = person(session, LENA)
    add_payloads(3, at=T0, team_id=None, prefix="eu")
    for n, who in enumerate(["customer-1", user, "x"]):
        sql(
            "UPDATE stored_payload SET request_json = :j WHERE request_id = :r",
            j=json.dumps({"request": {"user": who, "messages": []}}),
            r=f"eu{n}",
        )
    doc = written(privacy.access_export, actor=lead, end_user=user)
    assert [p["request_id"] for p in doc["stored_payloads"]] == ["eu1"]
    written(privacy.erase, actor=lead, end_user=user)
    assert ids("stored_payload", "request_id") == ["eu0", "eu2"]


# ---- erasure against holds of every dimension ---------------------------------------------


def _toms_payloads(session) -> Actor:
    tom = person(session, TOM)
    add_payloads(2, at=T0, team_id=team_id(session, "Support"), prefix="support", actor=tom.ref)
    add_payloads(1, at=T0 + timedelta(days=30), team_id=team_id(session, "Data"), prefix="later", actor=tom.ref)
    return tom


def test_erasing_a_person_keeps_payloads_under_a_hold_on_their_team_and_says_so(session, directory):
    _toms_payloads(session)
    case = hold(session, case="Support dispute", team_id=team_id(session, "Support"))
    result = written(privacy.erase, actor=person(session, LENA), email=TOM)
    assert ids("stored_payload", "request_id") == ["support0", "support1"]
    assert result.counts["stored_payloads_deleted"] == 1
    assert result.kept == {f"Support dispute (hold {case.id})": {"stored_payload": 2}}
    assert result.kept_lines() == [f"kept under legal hold Support dispute (hold {case.id}): stored_payload 2"]
    session.rollback()
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "privacy.erase")).one()
    assert json.loads(event.after_json)["kept_under_hold"] == {str(case.id): {"stored_payload": 2}}
    assert "Support dispute" not in event.after_json


def test_erasing_a_person_keeps_payloads_under_a_prompt_hold(session, directory, simple_version):
    tom = _toms_payloads(session)
    spec = PromptSpec("faq-answer", "Support", "Answer product questions", "low", "internal")
    prompt_id = store.create_prompt(session=session, actor=tom, prompt=spec, version=simple_version).prompt_id
    sql("UPDATE gateway_call SET prompt_name = 'faq-answer' WHERE request_id = 'support0'")
    case = hold(session, case="Prompt review", prompt_id=prompt_id)
    result = written(privacy.erase, actor=person(session, LENA), email=TOM)
    assert ids("stored_payload", "request_id") == ["support0"]
    assert result.kept == {f"Prompt review (hold {case.id})": {"stored_payload": 1}}


def test_erasing_a_person_keeps_payloads_under_a_time_range_hold(session, directory):
    _toms_payloads(session)
    hold(session, case="Q1 audit", starts_at=T0 - timedelta(days=1), ends_at=T0 + timedelta(days=1))
    written(privacy.erase, actor=person(session, LENA), email=TOM)
    assert ids("stored_payload", "request_id") == ["support0", "support1"]


def test_erasing_a_person_is_still_refused_while_a_hold_names_them(session, directory):
    tom = _toms_payloads(session)
    hold(session, case="HR-17", person_id=tom.person_id)
    with pytest.raises(Exception) as refused:
        written(privacy.erase, actor=person(session, LENA), email=TOM)
    assert str(refused.value) == "This person's records are under legal hold (HR-17); release the hold before erasing"
    assert count("stored_payload") == 3


def test_erasing_an_end_user_respects_holds(session, directory):
    add_payloads(2, at=T0, team_id=team_id(session, "Legal"), prefix="legal")
    add_payloads(1, at=T0, team_id=team_id(session, "Data"), prefix="data")
    sql("UPDATE stored_payload SET request_json = :j", j=json.dumps({"request": {"user": "customer-7"}}))
    case = hold(session, case="Contract dispute", team_id=team_id(session, "Legal"))
    result = written(privacy.erase, actor=person(session, LENA), end_user="customer-7")
    assert ids("stored_payload", "request_id") == ["legal0", "legal1"]
    assert result.kept == {f"Contract dispute (hold {case.id})": {"stored_payload": 2}}


def test_erasure_leaves_held_text_elsewhere_untouched(session, directory, simple_version):
    """A change note under a team hold keeps the name; the same note on an unheld team is scrubbed."""
    lead = person(session, LENA)
    subject = new_person(session, "Rita Vance", "rita.vance@example.com")
    note = {"change_note": "asked by Rita Vance"}
    for team, engineer, name in (("Support", TOM, "held-one"), ("Data", JONAS, "free-one")):
        spec = PromptSpec(name, team, "A purpose", "low", "internal")
        store.create_prompt(
            session=session,
            actor=person(session, engineer),
            prompt=spec,
            version=dataclasses.replace(simple_version, **note),
        )
    case = hold(session, case="Support dispute", team_id=team_id(session, "Support"))
    result = written(privacy.erase, actor=lead, email="rita.vance@example.com")
    with db.get_engine().connect() as conn:
        notes = dict(
            conn.execute(
                text("SELECT p.name, v.change_note FROM prompt_version v JOIN prompt p ON p.id = v.prompt_id")
            ).all()
        )
    assert notes == {"held-one": "asked by Rita Vance", "free-one": "asked by [erased]"}
    assert result.kept == {f"Support dispute (hold {case.id})": {"prompt_version": 1}}
    assert subject.ref == result.subject


def test_the_cli_erasure_prints_what_each_hold_kept(session, directory, capsys):
    _toms_payloads(session)
    case = hold(session, case="Support dispute", team_id=team_id(session, "Support"))
    assert cli(["privacy", "erase", "--email", TOM]) == 0
    out = capsys.readouterr().out
    assert f"kept under legal hold Support dispute (hold {case.id}): stored_payload 2" in out


# ---- retention enforcement against each hold dimension, for every record kind --------------


def _records(session, simple_version, *, team: str, engineer: str, reviewer: str, at, tag: str) -> None:
    """One record of every kind, all about one team, person, prompt and moment."""
    clock = Clock(at)
    author = person(session, engineer)
    team_of = team_id(session, team)
    spec = PromptSpec(f"prompt-{tag}", team, "A purpose", "low", "internal")
    version = store.create_prompt(session=session, actor=author, prompt=spec, version=simple_version)
    workflow.submit(session=session, actor=author, version_id=version.id)
    workflow.reject(session=session, actor=person(session, reviewer), version_id=version.id, comment="No")
    [request_id] = add_payloads(1, at=at, team_id=team_of, prefix=f"call-{tag}-", actor=author.ref)
    sql("UPDATE gateway_call SET prompt_name = :n WHERE request_id = :r", n=spec.name, r=request_id)
    with db.get_engine().begin() as conn:
        conn.execute(
            insert(HeldRequest.__table__),
            [
                {
                    "public_id": f"held_{tag}",
                    "request_id": request_id,
                    "team_id": team_of,
                    "kind": "input",
                    "rule": "moderation",
                    "findings_json": "[]",
                    "status": "denied",
                    "created_at": at,
                    "comment": "",
                }
            ],
        )
        conn.execute(
            insert(UsageRecord.__table__),
            [
                {
                    "occurred_at": at,
                    "team_id": team_of,
                    "person_id": author.person_id,
                    "prompt_id": version.prompt_id,
                    "model": "gpt-4o-mini",
                    "input_tokens": 1,
                    "output_tokens": 1,
                    "cost_micro": 1,
                }
            ],
        )
        conn.execute(
            insert(Experiment.__table__),
            [
                {
                    "team_id": team_of,
                    "prompt_id": version.prompt_id,
                    "testset_name": "t",
                    "variants_json": "[]",
                    "status": "finished",
                    "created_by": author.ref,
                    "created_at": at,
                }
            ],
        )
    clock.set(at)
    session.rollback()


def _untouched(tag: str) -> dict[str, bool]:
    """Per record kind: is the record of `tag` still there as it was (neither deleted nor anonymized)?"""
    prompt = f"(SELECT id FROM prompt WHERE name = 'prompt-{tag}')"
    call = f"request_id = 'call-{tag}-0'"
    return {
        "stored_payload": count("stored_payload", call) == 1,
        "held_request": count("held_request", f"public_id = 'held_{tag}'") == 1,
        "gateway_call": count("gateway_call", f"{call} AND actor <> 'anonymized'") == 1,
        "usage_record": count("usage_record", f"prompt_id = {prompt} AND person_id IS NOT NULL") == 1,
        "prompt_version": count("prompt_version", f"prompt_id = {prompt} AND author_ref <> 'anonymized'") == 1,
        "prompt_review": count(
            "prompt_review", f"version_id IN (SELECT id FROM prompt_version WHERE prompt_id = {prompt})"
        )
        == 1,
        "experiment": count("experiment", f"prompt_id = {prompt}") == 1,
    }


DIMENSIONS = ["team", "person", "prompt", "time range"]


@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_enforcement_honours_every_hold_dimension_for_every_record_kind(session, directory, simple_version, dimension):
    lead = person(session, LENA)
    _records(session, simple_version, team="Support", engineer=TOM, reviewer=LENA, at=T0, tag="held")
    _records(
        session, simple_version, team="Data", engineer=JONAS, reviewer=RAFAEL, at=T0 + timedelta(days=30), tag="free"
    )
    [held_prompt] = ids("prompt", "id", "name = 'prompt-held'")
    reviewer_of_held = person(session, LENA)
    scopes = {
        "team": {"team_id": team_id(session, "Support")},
        "person": {"person_id": person(session, TOM).person_id},
        "prompt": {"prompt_id": held_prompt},
        "time range": {"starts_at": T0 - timedelta(days=1), "ends_at": T0 + timedelta(days=1)},
    }
    hold(session, case=f"By {dimension}", **scopes[dimension])
    if dimension == "person":  # a review is the reviewer's record: hold the reviewer too
        hold(session, case="By reviewer", person_id=reviewer_of_held.person_id)
    for klass in ("request_payloads", "response_payloads", "review_records", "playground_outputs"):
        written(rules.set_rule, actor=lead, class_key=klass, period="1d", action="delete")
    for klass in ("prompt_versions", "usage_rows"):
        written(rules.set_rule, actor=lead, class_key=klass, period="1d", action="anonymize")
    Clock(T0 + timedelta(days=3 * 365))
    enforce.enforce(actor=lead)
    assert _untouched("held") == dict.fromkeys(_untouched("held"), True)
    assert _untouched("free") == dict.fromkeys(_untouched("free"), False)  # the control: handled


def test_a_hold_placed_during_a_run_is_honoured_from_the_next_batch(session, directory):
    lead = person(session, LENA)
    support, data = team_id(session, "Support"), team_id(session, "Data")
    Clock(T0)
    add_payloads(3, at=T0, team_id=data, prefix="data")
    add_payloads(3, at=T0, team_id=support, prefix="support")
    Clock(T0 + timedelta(days=6 * 365))
    placed = []

    def place_hold_once(_run_id, _batches):
        if not placed:
            placed.append(hold(session, case="Late hold", team_id=support))

    enforce.enforce(actor=lead, batch_size=1, after_batch=place_hold_once)
    assert placed
    # The first batch took one row before the hold existed; every later batch saw the hold.
    remaining = ids("stored_payload", "request_id")
    assert len(remaining) >= 2 and all(r.startswith("support") for r in remaining)


@pytest.fixture
def signing(monkeypatch, tmp_path):
    from core.settings import reset_settings
    from tests.audit_helpers import TEST_KEY

    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", TEST_KEY)
    monkeypatch.setenv("QUORUM_AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))
    reset_settings()


@pytest.fixture
def early_clock():
    """Set before the directory is seeded, so its events are dated T0 too."""
    return Clock(T0)


def test_a_prompt_hold_keeps_the_audit_events_of_its_versions(early_clock, signing, session, directory, simple_version):
    """The prompt's own creation event was pruned before the hold; its versions' events stay."""
    clock = early_clock
    tom = person(session, TOM)
    spec = PromptSpec("faq-answer", "Support", "A purpose", "low", "internal")
    first = store.create_prompt(session=session, actor=tom, prompt=spec, version=simple_version)
    clock.set(T0 + timedelta(days=2 * 365))
    workflow.submit(session=session, actor=tom, version_id=first.id)
    session.rollback()
    clock.set(T0 + timedelta(days=7 * 366))
    lead = person(session, LENA)
    pruned = enforce.enforce(actor=lead).pruned_before
    assert count("audit_event", "action = 'prompt.create'") == 0 and pruned is not None
    hold(session, case="Prompt dispute", prompt_id=first.prompt_id)
    clock.set(T0 + timedelta(days=10 * 366))
    enforce.enforce(actor=lead)
    assert count("audit_event", f"action = 'prompt.version.submit' AND target_id = '{first.id}'") == 1


def test_the_readme_states_what_holds_and_erasure_protect():
    from tests.test_attack_four_eyes import _readme_section

    section = _readme_section("Retention and privacy")
    assert "a legal hold wins over deletion and over erasure" in section
    assert (
        "Erasure is refused while a legal hold names the person, and while the person wrote or approved a "
        "version still in review"
    ) in section
    example = privacy.ErasureResult("person:1", kept={"Acme v. Example (hold 3)": {"stored_payload": 2}})
    assert f"e.g. `{example.kept_lines()[0]}`" in section
    assert "a name such as `%`, `_` or `\\` matches only itself" in section
    assert "a database user with write access can delete held rows or the holds themselves" in section
    assert "Holds are read again for every batch" in section


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet="%_\\/ab", min_size=1, max_size=4), stored=st.text(alphabet="%_\\/abc ", max_size=12))
def test_the_sql_look_up_never_widens_a_name_into_a_pattern(session, name, stored):
    """On the database itself: the escaped LIKE is true only when the text holds the name."""
    from sqlalchemy import String, literal
    from sqlalchemy import select as sa_select

    from core.retention.mentions import forms, may_mention

    matched = session.execute(sa_select(may_mention(literal(stored, String), [name]))).scalar()
    assert bool(matched) == any(f.lower() in stored.lower() for f in forms(name))
