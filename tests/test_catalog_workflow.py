"""The review workflow: transitions, four eyes, labels, resolving, permissions and audit."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import func, select

from core.catalog import labels, store, workflow
from core.catalog.policy import parse_review_policy
from core.catalog.resolve import resolve, resolve_for_playground
from core.catalog.spec import MessageSpec, PromptSpec
from core.catalog.views import review_queue, reviews_waiting
from core.errors import Conflict, InvalidTransition, NotFound, PermissionDenied, ValidationError
from core.identity import people as identity
from core.models.audit import AuditEvent
from core.permissions import Role

TOM, MEI = "tom.becker@example.com", "mei.chen@example.com"
LENA, RAFAEL = "lena.fischer@example.com", "rafael.gomez@example.com"


def audit_count(session) -> int:
    return session.exec(select(func.count()).select_from(AuditEvent)).one()


def last_event(session) -> AuditEvent:
    return session.exec(select(AuditEvent).order_by(AuditEvent.id.desc())).first()


@pytest.fixture
def catalog(session, directory, simple_version):
    return Catalog(session, directory, simple_version)


class Catalog:
    def __init__(self, session, directory, version):
        self.s, self.d, self.version = session, directory, version

    def actor(self, email):
        return self.d.by_email(email)

    def new_prompt(self, name="faq-answer", risk="medium", team="Support", author=TOM) -> int:
        spec = PromptSpec(name, team, "Answer product questions", risk, "internal")
        return store.create_prompt(session=self.s, actor=self.actor(author), prompt=spec, version=self.version).id

    def new_version(self, version_id, text="Be brief.", author=TOM) -> int:
        base = store.get_version(self.s, version_id)
        spec = dataclasses.replace(
            self.version, messages=(*self.version.messages, MessageSpec("system", text)), change_note=f"add '{text}'"
        )
        return store.create_version(session=self.s, actor=self.actor(author), prompt_id=base.prompt_id, version=spec).id

    def submit(self, vid, author=TOM):
        return workflow.submit(session=self.s, actor=self.actor(author), version_id=vid)

    def approve(self, vid, who=LENA, comment="Looks right"):
        return workflow.approve(session=self.s, actor=self.actor(who), version_id=vid, comment=comment)

    def approved(self, name="faq-answer", risk="medium") -> int:
        vid = self.new_prompt(name, risk)
        self.submit(vid)
        self.approve(vid)
        if risk == "high":
            self.approve(vid, RAFAEL)
        return vid

    def state(self, vid):
        self.s.rollback()
        return store.get_version(self.s, vid).state


# ---- the state machine -----------------------------------------------------------------


def test_the_happy_path_draft_review_approve_deprecate(catalog):
    vid = catalog.new_prompt()
    assert catalog.state(vid) == "draft"
    catalog.submit(vid)
    assert catalog.state(vid) == "in_review"
    catalog.approve(vid)
    assert catalog.state(vid) == "approved"
    workflow.deprecate(session=catalog.s, actor=catalog.actor(LENA), version_id=vid)
    assert catalog.state(vid) == "deprecated"


@pytest.mark.parametrize(
    ("decide", "state"), [(workflow.request_changes, "changes_requested"), (workflow.reject, "rejected")]
)
def test_request_changes_and_reject_end_the_version(catalog, decide, state):
    vid = catalog.new_prompt()
    catalog.submit(vid)
    decide(session=catalog.s, actor=catalog.actor(LENA), version_id=vid, comment="Too vague")
    assert catalog.state(vid) == state
    with pytest.raises(InvalidTransition, match=f"faq-answer v1 is {state.replace('_', ' ')}.*write a new version"):
        catalog.submit(vid)
    with pytest.raises(InvalidTransition):
        catalog.approve(vid)
    # The engineer's next version goes through review on its own.
    v2 = catalog.new_version(vid)
    catalog.submit(v2)
    assert catalog.state(v2) == "in_review"


def _to_state(catalog, state) -> int:
    vid = catalog.new_prompt()
    if state == "draft":
        return vid
    catalog.submit(vid)
    if state == "in_review":
        return vid
    if state == "changes_requested":
        workflow.request_changes(session=catalog.s, actor=catalog.actor(LENA), version_id=vid, comment="no")
    elif state == "rejected":
        workflow.reject(session=catalog.s, actor=catalog.actor(LENA), version_id=vid, comment="no")
    else:
        catalog.approve(vid)
        if state == "deprecated":
            workflow.deprecate(session=catalog.s, actor=catalog.actor(LENA), version_id=vid)
    return vid


ACTIONS = {
    "submit": lambda c, v: workflow.submit(session=c.s, actor=c.actor(TOM), version_id=v),
    "approve": lambda c, v: workflow.approve(session=c.s, actor=c.actor(LENA), version_id=v, comment="ok"),
    "request_changes": lambda c, v: workflow.request_changes(
        session=c.s, actor=c.actor(LENA), version_id=v, comment="x"
    ),
    "reject": lambda c, v: workflow.reject(session=c.s, actor=c.actor(LENA), version_id=v, comment="x"),
    "deprecate": lambda c, v: workflow.deprecate(session=c.s, actor=c.actor(LENA), version_id=v),
}
ALLOWED = {
    ("draft", "submit"),
    ("in_review", "approve"),
    ("in_review", "request_changes"),
    ("in_review", "reject"),
    ("approved", "deprecate"),
}


@pytest.mark.parametrize("state", store.STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition_not_in_the_table_is_refused_with_a_clear_message(catalog, state, action):
    vid = _to_state(catalog, state)
    before = audit_count(catalog.s)
    if (state, action) in ALLOWED:
        ACTIONS[action](catalog, vid)
        assert audit_count(catalog.s) == before + 1
        return
    with pytest.raises(InvalidTransition, match=f"faq-answer v1 is {state.replace('_', ' ')}; it cannot become"):
        ACTIONS[action](catalog, vid)
    assert catalog.state(vid) == state
    assert audit_count(catalog.s) == before


def test_submission_runs_static_checks_and_names_the_errors(catalog):
    bad = dataclasses.replace(catalog.version, messages=(MessageSpec("user", "Hi {{ nobody }}"),))
    prompt = PromptSpec("broken", "Support", "x", "low", "internal")
    vid = store.create_prompt(session=catalog.s, actor=catalog.actor(TOM), prompt=prompt, version=bad).id
    with pytest.raises(ValidationError, match="broken v1 cannot be submitted: .*'nobody', which is not declared"):
        catalog.submit(vid)
    assert catalog.state(vid) == "draft"


# ---- four eyes -------------------------------------------------------------------------


def test_the_author_can_never_approve_even_as_a_governance_lead(catalog):
    admin = catalog.d.admin
    lena_id = identity.person_by_email(catalog.s, LENA).id
    identity.grant_role(session=catalog.s, actor=admin, person_id=lena_id, role="prompt_engineer")
    vid = catalog.new_prompt(team="Legal", author=LENA)
    catalog.submit(vid, author=LENA)
    before = audit_count(catalog.s)
    with pytest.raises(Conflict, match="You wrote faq-answer v1; another reviewer must approve it"):
        catalog.approve(vid, LENA)
    assert catalog.state(vid) == "in_review" and audit_count(catalog.s) == before
    [item] = review_queue(catalog.s, actor=catalog.actor(LENA))
    assert item.mine
    assert reviews_waiting(catalog.s, catalog.actor(LENA)) == []
    assert len(reviews_waiting(catalog.s, catalog.actor(RAFAEL))) == 1


def test_high_risk_needs_two_distinct_approvers(catalog):
    vid = catalog.new_prompt(risk="high")
    catalog.submit(vid)
    catalog.approve(vid, LENA)
    assert catalog.state(vid) == "in_review"
    event = last_event(catalog.s)
    assert (event.action, event.after_json) == (
        "prompt.version.approve",
        '{"approvals":1,"required":2,"state":"in_review"}',
    )
    with pytest.raises(Conflict, match="already approved"):
        catalog.approve(vid, LENA)
    assert catalog.state(vid) == "in_review"
    assert [i.title for i in reviews_waiting(catalog.s, catalog.actor(LENA))] == []
    catalog.approve(vid, RAFAEL)
    assert catalog.state(vid) == "approved"


def test_a_new_version_needs_its_own_approvals(catalog):
    v1 = catalog.approved(risk="high")
    v2 = catalog.new_version(v1)
    catalog.submit(v2)
    catalog.approve(v2, LENA)
    assert catalog.state(v2) == "in_review"


@pytest.mark.parametrize("decide", [workflow.approve, workflow.request_changes, workflow.reject])
def test_every_decision_needs_a_comment(catalog, decide):
    vid = catalog.new_prompt()
    catalog.submit(vid)
    with pytest.raises(ValidationError, match="needs a comment"):
        decide(session=catalog.s, actor=catalog.actor(LENA), version_id=vid, comment="   ")
    assert catalog.state(vid) == "in_review"


def test_the_review_policy_is_validated():
    assert parse_review_policy({"approvals_required": {"low": 2}}).approvals_required == {
        "low": 2,
        "medium": 1,
        "high": 2,
    }
    with pytest.raises(ValidationError, match="approvals_required.high must be a whole number"):
        parse_review_policy({"approvals_required": {"high": 0}})
    with pytest.raises(ValidationError, match="unknown risk tier critical"):
        parse_review_policy({"approvals_required": {"critical": 3}})


# ---- labels and resolving --------------------------------------------------------------


def test_labels_point_only_at_approved_versions(catalog):
    vid = catalog.new_prompt()
    lena = catalog.actor(LENA)
    with pytest.raises(Conflict, match="can point only at an approved version; faq-answer v1 is draft"):
        labels.move_label(session=catalog.s, actor=lena, version_id=vid)
    catalog.submit(vid)
    with pytest.raises(Conflict, match="v1 is in review"):
        labels.move_label(session=catalog.s, actor=lena, version_id=vid)
    catalog.approve(vid)
    before = audit_count(catalog.s)
    labels.move_label(session=catalog.s, actor=lena, version_id=vid)
    assert audit_count(catalog.s) == before + 1
    assert last_event(catalog.s).after_json == f'{{"label":"production","version":1,"version_id":{vid}}}'


def test_moving_a_label_is_audited_with_before_and_after_and_kept_in_history(catalog):
    v1 = catalog.approved()
    lena = catalog.actor(LENA)
    labels.move_label(session=catalog.s, actor=lena, version_id=v1)
    v2 = catalog.new_version(v1)
    catalog.submit(v2)
    catalog.approve(v2, RAFAEL)
    labels.move_label(session=catalog.s, actor=lena, version_id=v2)
    event = last_event(catalog.s)
    assert '"version":1' in event.before_json and '"version":2' in event.after_json
    prompt_id = store.get_version(catalog.s, v2).prompt_id
    assert [(m.from_version, m.to_version) for m in labels.label_history(catalog.s, prompt_id)] == [(1, 2), (None, 1)]
    assert resolve(catalog.s, "faq-answer").version_number == 2


def test_deprecating_a_labelled_version_is_refused_naming_the_label(catalog):
    vid = catalog.approved()
    labels.move_label(session=catalog.s, actor=catalog.actor(LENA), version_id=vid, label="staging")
    with pytest.raises(Conflict, match="faq-answer v1 is labelled 'staging'; move the label"):
        workflow.deprecate(session=catalog.s, actor=catalog.actor(LENA), version_id=vid)


def test_resolve_never_returns_a_version_that_is_not_approved(catalog):
    vid = catalog.new_prompt()
    with pytest.raises(NotFound, match="has no 'production' label"):
        resolve(catalog.s, "faq-answer")
    with pytest.raises(NotFound, match="No prompt named 'nope'"):
        resolve(catalog.s, "nope")
    catalog.submit(vid)
    catalog.approve(vid)
    labels.move_label(session=catalog.s, actor=catalog.actor(LENA), version_id=vid)
    v2 = catalog.new_version(vid)
    catalog.submit(v2)
    resolved = resolve(catalog.s, "faq-answer")
    assert (resolved.version_number, resolved.state) == (1, "approved")
    assert resolved.spec.messages == catalog.version.messages
    # A label row forced at a draft (a hand-edited database) is refused, not served.
    from core.models.catalog import PromptLabel

    row = catalog.s.exec(select(PromptLabel)).one()
    row.version_id = v2
    catalog.s.add(row)
    catalog.s.commit()
    with pytest.raises(Conflict, match="which is in_review, not approved"):
        resolve(catalog.s, "faq-answer")


def test_the_playground_runs_drafts_only_for_the_owning_teams_engineers(catalog):
    catalog.new_prompt()
    tom, mei = catalog.actor(TOM), catalog.actor(MEI)
    assert resolve_for_playground(session=catalog.s, actor=tom, name="faq-answer", version_number=1).state == "draft"
    with pytest.raises(PermissionDenied, match="for a team they do not belong to"):
        resolve_for_playground(session=catalog.s, actor=mei, name="faq-answer", version_number=1)
    with pytest.raises(PermissionDenied):
        resolve_for_playground(session=catalog.s, actor=catalog.actor(LENA), name="faq-answer", version_number=1)


# ---- permissions and audit -------------------------------------------------------------


def test_wrong_team_or_wrong_role_is_refused_and_nothing_is_audited(catalog):
    vid = catalog.new_prompt()
    before = audit_count(catalog.s)
    with pytest.raises(PermissionDenied, match="for a team they do not belong to"):
        catalog.submit(vid, author=MEI)
    with pytest.raises(PermissionDenied, match="may not 'prompt.write'"):
        catalog.new_prompt(name="other", author=LENA)
    catalog.submit(vid)
    before = audit_count(catalog.s)
    for role in (Role.PROMPT_ENGINEER, Role.FINANCE, Role.AUDITOR, Role.ADMIN):
        with pytest.raises(PermissionDenied, match="may not 'prompt.review'"):
            workflow.approve(session=catalog.s, actor=catalog.d.with_role(role), version_id=vid, comment="ok")
    catalog.approve(vid)
    before = audit_count(catalog.s)
    with pytest.raises(PermissionDenied, match="may not 'label.move'"):
        labels.move_label(session=catalog.s, actor=catalog.actor(TOM), version_id=vid)
    catalog.s.rollback()
    assert audit_count(catalog.s) == before


def test_each_transition_writes_exactly_one_audit_event_with_before_and_after(catalog):
    vid = catalog.new_prompt()
    steps = [
        (lambda: catalog.submit(vid), "prompt.version.submit", "draft", "in_review"),
        (lambda: catalog.approve(vid), "prompt.version.approve", "in_review", "approved"),
        (
            lambda: workflow.deprecate(session=catalog.s, actor=catalog.actor(LENA), version_id=vid),
            "prompt.version.deprecate",
            "approved",
            "deprecated",
        ),
    ]
    for step, action, before_state, after_state in steps:
        before = audit_count(catalog.s)
        step()
        assert audit_count(catalog.s) == before + 1
        event = last_event(catalog.s)
        assert event.action == action and event.target_id == str(vid)
        assert f'"state":"{before_state}"' in event.before_json and f'"state":"{after_state}"' in event.after_json
        assert "Lena" not in (event.after_json + event.before_json)


def test_an_unchanged_new_version_is_refused_and_content_is_never_rewritten(catalog):
    vid = catalog.new_prompt()
    with pytest.raises(Conflict, match="Nothing changed"):
        store.create_version(
            session=catalog.s,
            actor=catalog.actor(TOM),
            prompt_id=store.get_version(catalog.s, vid).prompt_id,
            version=dataclasses.replace(catalog.version, change_note="same"),
        )
    v2 = catalog.new_version(vid)
    first = store.get_version(catalog.s, vid)
    assert (first.number, store.get_version(catalog.s, v2).number) == (1, 2)
    assert store.version_spec(first).messages == catalog.version.messages
