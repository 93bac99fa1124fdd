"""Four-eyes approval attacked by an insider with a role: retention set to forget reviews or
authors, rows deleted with SQL, erasure and re-creation of a person, and a risk tier
lowered through import, the core functions and the CLI. Each asserts what the user sees."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import select

from core import db
from core.audit.verify import verify_chain
from core.catalog import risk, store, sync, workflow
from core.catalog.spec import MessageSpec, PromptSpec
from core.cli.main import main as cli
from core.errors import Conflict, InvalidTransition, PermissionDenied
from core.identity import people as identity
from core.models.audit import AuditEvent
from core.models.catalog import Prompt, PromptReview
from core.permissions import Actor
from core.retention import enforce, privacy, rules
from tests.retention_support import T0, Clock, count, written

SYSTEM = Actor.system("test")
TOM, LENA, RAFAEL = "tom.becker@example.com", "lena.fischer@example.com", "rafael.gomez@example.com"
ZOE = "zoe.both@example.com"  # governance lead and prompt engineer of Support at once


@pytest.fixture
def fx(session, directory, simple_version):
    return FourEyes(session, directory, simple_version)


class FourEyes:
    def __init__(self, session, directory, version):
        self.s, self.d, self.version = session, directory, version

    def actor(self, email) -> Actor:
        self.s.rollback()
        return self.d.by_email(email)

    def add_zoe(self) -> Actor:
        support = identity.team_by_name(self.s, "Support").id
        identity.add_person(
            session=self.s,
            actor=SYSTEM,
            email=ZOE,
            display_name="Zoe Both",
            roles=["governance_lead", "prompt_engineer"],
            team_ids=[support],
        )
        return self.actor(ZOE)

    def prompt(self, risk_tier="high", author=TOM, name="faq-answer") -> int:
        spec = PromptSpec(name, "Support", "Answer product questions", risk_tier, "internal")
        vid = store.create_prompt(session=self.s, actor=self.actor(author), prompt=spec, version=self.version).id
        self.s.rollback()
        return vid

    def next_version(self, vid, author=TOM) -> int:
        base = store.get_version(self.s, vid)
        spec = dataclasses.replace(
            self.version,
            messages=(*self.version.messages, MessageSpec("system", "Be brief.")),
            change_note="shorter answers",
        )
        return store.create_version(session=self.s, actor=self.actor(author), prompt_id=base.prompt_id, version=spec).id

    def submit(self, vid, who=TOM):
        return workflow.submit(session=self.s, actor=self.actor(who), version_id=vid)

    def approve(self, vid, who):
        return workflow.approve(session=self.s, actor=self.actor(who), version_id=vid, comment="Looks right")

    def state(self, vid) -> str:
        self.s.rollback()
        return store.get_version(self.s, vid).state

    def approve_events(self, vid) -> list[str]:
        self.s.rollback()
        return list(
            self.s.exec(
                select(AuditEvent.actor).where(
                    AuditEvent.action == "prompt.version.approve", AuditEvent.target_id == str(vid)
                )
            )
        )


def sql(statement: str, **params) -> None:
    with db.get_engine().begin() as conn:
        conn.execute(text(statement), params)


# ---- retention set to forget reviews or authors ---------------------------------------------


@pytest.mark.parametrize("action", ["delete", "anonymize"])
def test_retention_never_forgets_the_approvals_of_a_version_in_review(fx, action):
    clock = Clock(T0)
    lead = fx.actor(LENA)
    vid = fx.prompt("high")
    fx.submit(vid)
    fx.approve(vid, LENA)
    written(rules.set_rule, actor=lead, class_key="review_records", period="1d", action=action)
    clock.set(T0 + timedelta(days=3))
    fx.s.rollback()
    enforce.enforce(actor=lead)
    assert count("prompt_review", f"version_id = {vid} AND reviewer_ref = '{lead.ref}'") == 1
    with pytest.raises(Conflict) as refused:
        fx.approve(vid, LENA)
    assert str(refused.value) == "You have already approved faq-answer v1; it needs a different reviewer"
    assert fx.state(vid) == "in_review"
    fx.approve(vid, RAFAEL)
    assert fx.state(vid) == "approved"


def test_retention_keeps_the_approvals_of_approved_and_labelled_versions_and_forgets_the_rest(fx):
    from core.catalog import labels

    clock = Clock(T0)
    lead = fx.actor(LENA)
    live = fx.prompt("medium", name="live-one")
    fx.submit(live)
    fx.approve(live, LENA)
    labels.move_label(session=fx.s, actor=lead, version_id=live)
    dead = fx.prompt("medium", name="dead-one")
    fx.submit(dead)
    workflow.reject(session=fx.s, actor=fx.actor(RAFAEL), version_id=dead, comment="No")
    written(rules.set_rule, actor=lead, class_key="review_records", period="1d", action="delete")
    clock.set(T0 + timedelta(days=3))
    fx.s.rollback()
    result = enforce.enforce(actor=lead)
    assert result.counts["prompt_review"]["deleted"] == 1  # the rejected version's review alone
    assert count("prompt_review", f"version_id = {live}") == 1
    assert count("prompt_review", f"version_id = {dead}") == 0


def test_shortened_prompt_version_retention_never_lets_an_author_approve_their_own_version(fx):
    clock = Clock(T0)
    zoe = fx.add_zoe()
    vid = fx.prompt("medium", author=ZOE)
    fx.submit(vid, ZOE)
    written(rules.set_rule, actor=zoe, class_key="prompt_versions", period="1d", action="anonymize")
    clock.set(T0 + timedelta(days=3))
    fx.s.rollback()
    enforce.enforce(actor=zoe)
    fx.s.rollback()
    assert store.get_version(fx.s, vid).author_ref == zoe.ref  # undecided: kept as written
    with pytest.raises(Conflict) as refused:
        fx.approve(vid, ZOE)
    assert str(refused.value) == "You wrote faq-answer v1; another reviewer must approve it"
    assert fx.state(vid) == "in_review"


# ---- rows changed with SQL -------------------------------------------------------------------


def test_deleting_approval_rows_with_sql_never_lets_one_person_approve_twice(fx):
    vid = fx.prompt("high")
    fx.submit(vid)
    fx.approve(vid, LENA)
    sql("DELETE FROM prompt_review WHERE version_id = :v", v=vid)
    from core.catalog.views import review_queue, reviews_waiting

    assert reviews_waiting(fx.s, fx.actor(LENA)) == []  # the home page does not invite her again
    [item] = review_queue(fx.s, actor=fx.actor(LENA))
    assert (item.already_reviewed, item.approvals, item.required) == (True, 1, 2)
    with pytest.raises(Conflict, match="You have already approved faq-answer v1; it needs a different reviewer"):
        fx.approve(vid, LENA)
    assert fx.state(vid) == "in_review"
    fx.approve(vid, RAFAEL)  # the chain still counts Lena: Rafael's is the second approval
    assert fx.state(vid) == "approved"
    assert sorted(fx.approve_events(vid)) == sorted([fx.actor(LENA).ref, fx.actor(RAFAEL).ref])


def test_anonymizing_approval_rows_with_sql_never_lets_one_person_approve_twice(fx):
    vid = fx.prompt("high")
    fx.submit(vid)
    fx.approve(vid, LENA)
    sql("UPDATE prompt_review SET reviewer_ref = 'anonymized', reviewer_person_id = NULL WHERE version_id = :v", v=vid)
    with pytest.raises(Conflict, match="You have already approved faq-answer v1"):
        fx.approve(vid, LENA)
    assert fx.state(vid) == "in_review"


def test_a_review_row_forged_with_sql_adds_no_approval(fx):
    vid = fx.prompt("high")
    fx.submit(vid)
    sql(
        "INSERT INTO prompt_review (version_id, reviewer_ref, decision, comment, created_at) "
        "VALUES (:v, 'person:999', 'approve', 'forged', :t)",
        v=vid,
        t=T0.replace(tzinfo=None),
    )
    fx.approve(vid, LENA)
    assert fx.state(vid) == "in_review"  # one approval in the chain: a second reviewer is still needed
    fx.approve(vid, RAFAEL)
    assert fx.state(vid) == "approved"


def test_clearing_the_author_with_sql_never_lets_the_author_approve(fx):
    zoe = fx.add_zoe()
    first = fx.prompt("low", author=ZOE)
    second = fx.next_version(first, author=ZOE)
    fx.submit(first, ZOE)
    fx.submit(second, ZOE)
    sql("UPDATE prompt_version SET author_ref = 'anonymized', author_person_id = NULL")
    for vid, label in ((first, "faq-answer v1"), (second, "faq-answer v2")):
        with pytest.raises(Conflict) as refused:
            fx.approve(vid, ZOE)
        assert str(refused.value) == f"You wrote {label}; another reviewer must approve it"
    assert zoe.ref not in fx.approve_events(first) + fx.approve_events(second)


def test_a_state_set_to_approved_with_sql_cannot_be_labelled(fx):
    from core.catalog import labels

    vid = fx.prompt("high")
    fx.submit(vid)
    fx.approve(vid, LENA)
    sql("UPDATE prompt_version SET state = 'approved' WHERE id = :v", v=vid)
    with pytest.raises(Conflict) as refused:
        labels.move_label(session=fx.s, actor=fx.actor(RAFAEL), version_id=vid)
    assert str(refused.value) == (
        "faq-answer v1 is marked approved, but the audit log holds no approval that "
        "approved it; label 'production' cannot point at it (run `quorum audit verify`)"
    )
    assert count("prompt_label") == 0


def test_deleting_the_approval_from_the_audit_chain_too_is_reported_by_verify(fx):
    """A database user who deletes both the review row and its audit event can approve again:
    Quorum cannot prevent that, but `quorum audit verify` reports the gap."""
    vid = fx.prompt("high")
    fx.submit(vid)
    fx.approve(vid, LENA)
    fx.s.rollback()
    assert verify_chain(session=fx.s, actor=SYSTEM).ok
    sql("DELETE FROM prompt_review WHERE version_id = :v", v=vid)
    sql("DELETE FROM audit_event WHERE action = 'prompt.version.approve' AND target_id = :v", v=str(vid))
    verdict = verify_chain(session=fx.s, actor=SYSTEM)
    assert not verdict.ok
    assert verdict.lines()


# ---- erasure and re-creation ----------------------------------------------------------------


def test_erasure_is_refused_while_the_person_wrote_or_approved_a_version_in_review(fx):
    lead = fx.actor(RAFAEL)
    fx.add_zoe()
    written_by_zoe = fx.prompt("high", author=ZOE)
    fx.submit(written_by_zoe, ZOE)
    approved_by_lena = fx.prompt("high", name="other-prompt")
    fx.submit(approved_by_lena)
    fx.approve(approved_by_lena, LENA)
    with pytest.raises(Conflict) as refused:
        written(privacy.erase, actor=lead, email=ZOE)
    assert str(refused.value) == (
        "This person wrote or approved versions still in review (faq-answer v1); "
        "decide those reviews before erasing the person"
    )
    with pytest.raises(Conflict, match=r"still in review \(other-prompt v1\)"):
        written(privacy.erase, actor=lead, email=LENA)
    fx.s.rollback()
    assert identity.actor_for_email(fx.s, ZOE) is not None  # nothing was erased


def test_a_person_erased_and_created_again_cannot_get_their_old_draft_approved(fx):
    lead = fx.actor(RAFAEL)
    fx.add_zoe()
    draft = fx.prompt("medium", author=ZOE)
    written(privacy.erase, actor=lead, email=ZOE)
    fx.s.rollback()
    again = fx.add_zoe()  # a new person to Quorum, with the same e-mail and roles
    assert again.ref != store.get_version(fx.s, draft).author_ref
    with pytest.raises(Conflict) as refused:
        fx.submit(draft, TOM)
    assert str(refused.value) == (
        "faq-answer v1 was written by a person whose data was erased, so its author can "
        "no longer be told apart from its reviewers; write a new version instead"
    )
    assert fx.state(draft) == "draft"


# ---- the risk tier ----------------------------------------------------------------------------


def _exported(fx, tmp_path, risk_tier: str):
    directory = tmp_path / "prompts"
    sync.export_directory(session=fx.s, actor=SYSTEM, directory=directory)
    path = directory / "faq-answer.yaml"
    path.write_text(
        path.read_text()
        .replace("risk_tier: high", f"risk_tier: {risk_tier}")
        .replace("risk_tier: low", f"risk_tier: {risk_tier}")
    )
    fx.s.rollback()
    return directory


def test_an_engineer_cannot_lower_a_risk_tier_by_import(fx, tmp_path):
    vid = fx.prompt("high")
    directory = _exported(fx, tmp_path, "low")
    (directory / "faq-answer.yaml").write_text(
        (directory / "faq-answer.yaml").read_text().replace("You answer", "You briefly answer")
    )
    events = count("audit_event")
    with pytest.raises(PermissionDenied) as refused:
        sync.import_directory(session=fx.s, actor=fx.actor(TOM), directory=directory)
    assert str(refused.value) == (
        f"{directory / 'faq-answer.yaml'}: Tom Becker may not lower the risk tier of "
        "'faq-answer' from high to low: only a governance lead may lower a risk tier; "
        "nothing was imported"
    )
    fx.s.rollback()
    assert fx.s.exec(select(Prompt.risk_tier)).all() == ["high"]
    assert count("prompt_version") == 1 and count("audit_event") == events
    fx.submit(vid)
    fx.approve(vid, LENA)
    assert fx.state(vid) == "in_review"  # still two approvals


def test_the_cli_import_refuses_a_lowered_tier_with_the_prompt_and_tiers_named(fx, tmp_path, capsys):
    fx.prompt("high")
    directory = _exported(fx, tmp_path, "medium")
    assert cli(["prompts", "import", str(directory), "--as", TOM]) == 1
    err = capsys.readouterr().err
    assert "may not lower the risk tier of 'faq-answer' from high to medium" in err
    assert "nothing was imported" in err
    assert fx.s.exec(select(Prompt.risk_tier)).all() == ["high"]


def test_an_engineer_may_raise_a_tier_by_import_and_it_is_audited(fx, tmp_path):
    fx.prompt("low")
    directory = _exported(fx, tmp_path, "high")
    report = sync.import_directory(session=fx.s, actor=fx.actor(TOM), directory=directory)
    assert report.updated_metadata == ["faq-answer"]
    fx.s.rollback()
    assert fx.s.exec(select(Prompt.risk_tier)).all() == ["high"]
    event = fx.s.exec(select(AuditEvent).where(AuditEvent.action == "prompt.risk_tier.change")).one()
    assert (event.actor, event.before_json, event.after_json) == (
        fx.actor(TOM).ref,
        '{"risk_tier":"low"}',
        '{"risk_tier":"high"}',
    )


def test_only_a_governance_lead_lowers_a_tier_and_never_for_a_version_already_in_review(fx):
    vid = fx.prompt("high")
    prompt_id = store.get_version(fx.s, vid).prompt_id
    fx.submit(vid)
    with pytest.raises(PermissionDenied) as refused:
        risk.change_risk_tier(session=fx.s, actor=fx.actor(TOM), prompt_id=prompt_id, risk_tier="low")
    assert str(refused.value) == (
        "Tom Becker may not lower the risk tier of 'faq-answer' from high to low: "
        "only a governance lead may lower a risk tier"
    )
    risk.change_risk_tier(session=fx.s, actor=fx.actor(RAFAEL), prompt_id=prompt_id, risk_tier="low")
    fx.approve(vid, LENA)
    assert fx.state(vid) == "in_review"  # submitted as high: it still needs two
    fx.approve(vid, RAFAEL)
    assert fx.state(vid) == "approved"
    fx.s.rollback()
    change = fx.s.exec(select(AuditEvent).where(AuditEvent.action == "prompt.risk_tier.change")).one()
    assert (change.actor, change.before_json, change.after_json) == (
        fx.actor(RAFAEL).ref,
        '{"risk_tier":"high"}',
        '{"risk_tier":"low"}',
    )
    # A version submitted after the change needs what the new tier says.
    second = fx.next_version(vid)
    fx.submit(second)
    fx.approve(second, LENA)
    assert fx.state(second) == "approved"


def test_raising_a_tier_applies_at_once_to_a_version_in_review(fx):
    vid = fx.prompt("low")
    fx.submit(vid)
    prompt_id = store.get_version(fx.s, vid).prompt_id
    risk.change_risk_tier(session=fx.s, actor=fx.actor(TOM), prompt_id=prompt_id, risk_tier="high")
    fx.approve(vid, LENA)
    assert fx.state(vid) == "in_review"


def test_the_cli_changes_a_tier_only_for_a_governance_lead(fx, capsys):
    fx.prompt("high")
    assert cli(["prompts", "risk-tier", "faq-answer", "low", "--as", TOM]) == 1
    assert "only a governance lead may lower a risk tier" in capsys.readouterr().err
    assert cli(["prompts", "risk-tier", "faq-answer", "low", "--as", LENA]) == 0
    assert capsys.readouterr().out.strip() == "faq-answer: risk tier high -> low"
    fx.s.rollback()
    assert fx.s.exec(select(Prompt.risk_tier)).all() == ["low"]


# ---- a property: whatever rows are deleted, approval needs distinct approvers in the chain --


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from([LENA, RAFAEL, ZOE]), st.booleans()), min_size=1, max_size=6))
def test_a_high_risk_version_is_approved_only_by_two_distinct_people_whatever_rows_vanish(fx, steps):
    if identity.actor_for_email(fx.s, ZOE) is None:
        fx.add_zoe()
    examples = count("prompt")
    vid = fx.prompt("high", author=ZOE, name="faq-" + "".join(chr(97 + int(d)) for d in str(examples)))
    fx.submit(vid, ZOE)
    for who, wipe_rows in steps:
        try:
            fx.approve(vid, who)
        except (Conflict, InvalidTransition):
            fx.s.rollback()
        if wipe_rows:
            sql("DELETE FROM prompt_review WHERE version_id = :v", v=vid)
    approvers = fx.approve_events(vid)
    assert len(approvers) == len(set(approvers))  # nobody approved twice
    assert fx.actor(ZOE).ref not in approvers  # the author never approved
    assert (fx.state(vid) == "approved") == (len(approvers) >= 2)
    assert all(r.reviewer_ref != fx.actor(ZOE).ref for r in fx.s.exec(select(PromptReview)))


def test_anonymizing_the_reviews_of_a_retired_version_with_two_reviewers_completes(fx):
    clock = Clock(T0)
    lead = fx.actor(LENA)
    vid = fx.prompt("high")
    fx.submit(vid)
    fx.approve(vid, LENA)
    fx.approve(vid, RAFAEL)
    workflow.deprecate(session=fx.s, actor=lead, version_id=vid)
    written(rules.set_rule, actor=lead, class_key="review_records", period="1d", action="anonymize")
    clock.set(T0 + timedelta(days=3))
    fx.s.rollback()
    assert enforce.enforce(actor=lead).counts["prompt_review"]["anonymized"] == 2
    assert count("prompt_review", "reviewer_person_id IS NULL AND comment = ''") == 2
    assert sorted(fx.approve_events(vid)) == sorted([lead.ref, fx.actor(RAFAEL).ref])  # the chain keeps who


# ---- the README's promises, kept next to the tests that make them true ---------------------


def _readme_section(title: str) -> str:
    from core.settings import PROJECT_ROOT

    text_ = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    start = text_.index(f"## {title}\n")
    end = text_.find("\n## ", start + 1)
    return " ".join(text_[start:end].split())


def test_the_readme_states_what_four_eyes_protects_and_what_it_does_not(capsys):
    from core.catalog.policy import DEFAULT_APPROVALS, load_review_policy

    section = _readme_section("Prompt catalog")
    assert "High-risk prompts need two different approvers" in section
    assert DEFAULT_APPROVALS["high"] == load_review_policy().required_for("high") == 2
    assert "Only approvals recorded in the audit chain count" in section
    assert f"audited as `{risk.CHANGE_EVENT}`" in section
    assert "only a governance lead lowers one" in section and "may raise it" in section
    assert (
        "A database user with write access can still set a version's state and a label's row directly "
        "(Quorum refuses only to move a label to a version whose approval is not in the audit chain)"
    ) in section
    assert "`quorum prompts risk-tier NAME TIER --as EMAIL`" in section
    with pytest.raises(SystemExit) as done:
        cli(["prompts", "risk-tier", "--help"])
    assert done.value.code == 0 and "governance leads" in capsys.readouterr().out


def test_the_migration_fixes_the_tier_of_versions_already_in_review(tmp_path):
    """A version in review when 0012 runs keeps its prompt's tier then: lowering it later changes nothing."""
    from core import migrate

    url = f"sqlite:///{tmp_path / 'before.db'}"
    migrate.upgrade(url, "0010")
    engine = db.get_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO team (id, name, name_key, description, created_at) "
                "VALUES (1, 'Support', 'support', '', :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
        conn.execute(
            text(
                "INSERT INTO prompt (id, name, team_id, purpose, risk_tier, data_classification, "
                "created_at) VALUES (1, 'faq-answer', 1, 'p', 'high', 'internal', :t)"
            ),
            {"t": T0.replace(tzinfo=None)},
        )
        for number, state in ((1, "in_review"), (2, "draft")):
            conn.execute(
                text(
                    "INSERT INTO prompt_version (prompt_id, number, content_json, content_hash, "
                    "change_note, author_ref, created_at, state, state_changed_at) VALUES "
                    "(1, :n, '{}', 'h', '', 'person:1', :t, :s, :t)"
                ),
                {"n": number, "s": state, "t": T0.replace(tzinfo=None)},
            )
    migrate.upgrade(url)
    with engine.connect() as conn:
        tiers = conn.execute(text("SELECT number, submitted_risk_tier FROM prompt_version ORDER BY number")).all()
    assert [tuple(row) for row in tiers] == [(1, "high"), (2, None)]
    db.dispose_engines()
