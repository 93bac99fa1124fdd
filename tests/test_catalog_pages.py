"""The catalog pages end to end: submit, approve from the queue, promote to production."""

from __future__ import annotations

from core.catalog import labels, store
from core.catalog.resolve import resolve
from core.catalog.spec import PromptSpec
from core.identity import people as identity
from tests.test_pages import errors_of, signed_in

TOM, LENA = "tom.becker@example.com", "lena.fischer@example.com"


def button(at, key):
    return next(b for b in at.button if b.key == key)


def test_engineer_submits_lead_approves_and_promotes_to_production(session, directory, simple_version):
    prompt = PromptSpec("faq-answer", "Support", "Answer product questions", "medium", "internal")
    vid = store.create_prompt(session=session, actor=directory.by_email(TOM), prompt=prompt, version=simple_version).id

    at = signed_in(session, TOM)
    at.switch_page("pages/prompt_editor.py").run()
    assert "approve_" not in " ".join(str(b.key) for b in at.button)
    button(at, f"submit_{vid}").click().run()
    assert not at.exception and not errors_of(at)
    assert any("submitted for review" in s.value for s in at.success)
    session.rollback()
    assert store.get_version(session, vid).state == "in_review"

    at = signed_in(session, LENA)
    at.switch_page("pages/review_queue.py").run()
    button(at, f"approve_{vid}").click().run()
    assert errors_of(at) == ["An approval needs a comment"]
    at.text_area(key=f"comment_{vid}").input("Scope and wording are fine.")
    button(at, f"approve_{vid}").click().run()
    assert not errors_of(at) and any("Approved faq-answer v1" in s.value for s in at.success)

    at = signed_in(session, LENA)
    at.switch_page("pages/review_queue.py").run()
    button(at, "move_label").click().run()
    # The move asks first, naming the label and the version; cancelling changes nothing.
    assert [w.value for w in at.warning] == [
        "Point 'production' at v1? Applications calling this prompt by its label get this version from the next call."
    ]
    button(at, "move_label_cancel").click().run()
    assert not at.warning
    session.rollback()
    assert labels.labels_of(session, store.get_version(session, vid).prompt_id) == {}
    button(at, "move_label").click().run()
    button(at, "move_label_yes").click().run()
    assert not errors_of(at), errors_of(at)
    session.rollback()
    assert resolve(session, "faq-answer").version_id == vid


def test_a_lead_who_wrote_a_version_sees_no_approve_button_for_it(session, directory, simple_version):
    lena_id = identity.person_by_email(session, LENA).id
    identity.grant_role(session=session, actor=directory.admin, person_id=lena_id, role="prompt_engineer")
    prompt = PromptSpec("clause-check", "Legal", "Check clauses", "high", "confidential")
    lena = directory.by_email(LENA)
    vid = store.create_prompt(session=session, actor=lena, prompt=prompt, version=simple_version).id
    from core.catalog import workflow

    workflow.submit(session=session, actor=lena, version_id=vid)
    at = signed_in(session, LENA)
    at.switch_page("pages/review_queue.py").run()
    assert not at.exception
    keys = {b.key for b in at.button}
    assert f"approve_{vid}" not in keys and f"reject_{vid}" not in keys
    assert any("You wrote this version" in c.value for c in at.caption)

    at = signed_in(session, "rafael.gomez@example.com")
    at.switch_page("pages/review_queue.py").run()
    assert f"approve_{vid}" in {b.key for b in at.button}


def test_catalog_pages_render_the_full_demo_for_every_role(demo_data):
    session = demo_data
    from core.permissions import Role
    from tests.test_pages import EMAIL_BY_ROLE

    for role in Role:
        for page in ("pages/home.py", "pages/catalog.py", "pages/prompt_editor.py", "pages/review_queue.py"):
            at = signed_in(session, EMAIL_BY_ROLE[role])
            try:
                at.switch_page(page).run()
            except ValueError:
                continue  # not this role's page
            assert not at.exception, (role, page, at.exception)
            assert not errors_of(at), (role, page, errors_of(at))
    at = signed_in(session, LENA)
    queue = next(t.value for t in at.dataframe if "Approvals" in t.value.columns)  # Home: the lead's review queue
    assert "support-answer v2" in set(queue["Prompt"])


def test_the_catalog_offers_engineers_a_higher_tier_only_and_leads_any(session, directory, simple_version):
    prompt = PromptSpec("faq-answer", "Support", "Answer product questions", "medium", "internal")
    store.create_prompt(session=session, actor=directory.by_email(TOM), prompt=prompt, version=simple_version)

    at = signed_in(session, TOM)
    at.switch_page("pages/catalog.py").run()
    assert at.selectbox(key="catalog_new_risk").options == ["high"]

    at = signed_in(session, LENA)
    at.switch_page("pages/catalog.py").run()
    assert at.selectbox(key="catalog_new_risk").options == ["low", "high"]
    at.selectbox(key="catalog_new_risk").select("low")
    button(at, "catalog_change_risk").click().run()
    assert not errors_of(at) and any("faq-answer is now low risk" in s.value for s in at.success)
    session.rollback()
    assert store.prompt_by_name(session, "faq-answer").risk_tier == "low"

    at = signed_in(session, "daniel.kim@example.com")  # an auditor reads, changes nothing
    at.switch_page("pages/catalog.py").run()
    assert "catalog_change_risk" not in {b.key for b in at.button}


def test_a_review_comment_with_a_token_is_refused_on_the_page_and_not_stored(session, directory, simple_version):
    from core.catalog import workflow

    prompt = PromptSpec("faq-answer", "Support", "Answer product questions", "medium", "internal")
    vid = store.create_prompt(session=session, actor=directory.by_email(TOM), prompt=prompt, version=simple_version).id
    workflow.submit(session=session, actor=directory.by_email(TOM), version_id=vid)
    token = "ghp_" + "Zq9w" * 9  # built here, at run time: not a literal key in the repository

    at = signed_in(session, LENA)
    at.switch_page("pages/review_queue.py").run()
    at.text_area(key=f"comment_{vid}").input(f"Works with {token} for me.")
    button(at, f"approve_{vid}").click().run()
    assert errors_of(at) == ["The review comment contains a GitHub token; remove it before saving"]
    session.rollback()
    assert workflow.reviews_of(session, vid) == [] and store.get_version(session, vid).state == "in_review"


def test_an_older_version_in_review_says_a_newer_one_is_approved_and_what_approving_does(
    session, directory, simple_version
):
    from dataclasses import replace

    from core.catalog import views, workflow

    tom, lena = directory.by_email(TOM), directory.by_email(LENA)
    prompt = PromptSpec("faq-answer", "Support", "Answer product questions", "medium", "internal")
    v1 = store.create_prompt(session=session, actor=tom, prompt=prompt, version=simple_version)
    v2 = store.create_version(
        session=session,
        actor=tom,
        prompt_id=v1.prompt_id,
        version=replace(simple_version, model="gpt-4o", change_note="A larger model for long tickets."),
    )
    for version in (v1, v2):
        workflow.submit(session=session, actor=tom, version_id=version.id)
    workflow.approve(session=session, actor=lena, version_id=v2.id, comment="Fine.")
    labels.move_label(session=session, actor=lena, version_id=v2.id)

    [item] = views.review_queue(session, actor=lena)
    assert item.number == 1 and item.superseded_by == "v2 (approved, production)"
    assert item.outcome == (
        "Approving makes v1 approved: a governance lead may then point a label at it. Production today: v2. "
        "A newer version, v2 (approved, production), is already approved: labelling v1 would roll it back."
    )
    at = signed_in(session, "rafael.gomez@example.com")
    at.switch_page("pages/review_queue.py").run()
    assert [w.value for w in at.warning] == ["Superseded: v2 (approved, production) is newer and already approved."]
    # The card's diff against production names the field that differs, with both values.
    assert "**model** · changed: `gpt-4o` → `gpt-4o-mini`" in [m.value for m in at.markdown]
