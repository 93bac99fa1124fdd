"""Editor: write a new version of a prompt (or a new prompt), save it as a draft, submit it."""

import streamlit as st

from core import db
from core.budgets import prices
from core.catalog import editor, store, views, workflow
from core.catalog.checks import static_checks
from core.catalog.spec import DATA_CLASSIFICATIONS, MESSAGE_ROLES, RISK_TIERS, PromptSpec
from core.errors import QuorumError
from core.identity import people as identity
from pages.ui import layout
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Prompt editor")
layout.show_flash()

with db.session_scope() as session:
    my_teams = {t.id: t.name for t in identity.list_teams(session) if t.id in actor.team_ids}
    prompts = [p for p in views.list_prompts(session, actor=actor) if p.team in my_teams.values()]
if not my_teams:
    st.info("You are not in a team yet; an admin adds you to one so you can write its prompts.")
    st.stop()

by_id = {p.id: p for p in prompts}
choice = st.selectbox(
    "Prompt",
    [None, *by_id],
    format_func=lambda i: by_id[i].name if i else "New prompt…",
    index=1 if prompts else 0,
    key="editor_prompt",
)
base = None
if choice is None:
    left, right = st.columns(2)
    name = left.text_input("Name", key="editor_new_name", placeholder="e.g. refund-answer")
    team = right.selectbox("Team", list(my_teams.values()), key="editor_new_team")
    purpose = st.text_area("Purpose", key="editor_new_purpose", height=70)
    left, right = st.columns(2)
    risk = left.selectbox("Risk tier", RISK_TIERS, key="editor_new_risk")
    classification = right.selectbox(
        "Data classification", DATA_CLASSIFICATIONS, index=1, key="editor_new_classification"
    )
    prompt = PromptSpec(
        name=name.strip(), team=team, purpose=purpose, risk_tier=risk, data_classification=classification
    )
    suffix = "new"
else:
    with db.session_scope() as session:
        detail = views.prompt_detail(session, actor=actor, prompt_id=choice)
        prompt = views.prompt_spec_of(session, actor=actor, prompt_id=choice)
    numbers = {v.id: v for v in detail.versions}
    base_id = st.selectbox(
        "Start from",
        list(numbers),
        key="editor_base",
        format_func=lambda i: f"v{numbers[i].number} ({numbers[i].state.replace('_', ' ')})",
    )
    with db.session_scope() as session:
        base = views.version_spec_of(session, actor=actor, version_id=base_id)
    suffix = f"{choice}_{base_id}"
    st.caption(
        literal(f"{prompt.team} · {prompt.risk_tier} risk · {prompt.data_classification} data — {prompt.purpose}")
    )

left, mid, right = st.columns([2, 1, 1])
model = left.text_input("Model", value=base.model if base else "gpt-4o-mini", key=f"editor_model_{suffix}")
temperature = mid.number_input(
    "Temperature",
    0.0,
    2.0,
    step=0.1,
    key=f"editor_temperature_{suffix}",
    value=base.params.temperature if base else None,
)
max_tokens = right.number_input(
    "Max tokens", 1, 128_000, step=50, key=f"editor_max_tokens_{suffix}", value=base.params.max_tokens if base else None
)
base_messages = [(m.role, m.content) for m in base.messages] if base else [("system", ""), ("user", "")]
count = st.number_input("Messages", 1, 20, value=len(base_messages), key=f"editor_count_{suffix}")
messages = []
for index in range(int(count)):
    role, content = base_messages[index] if index < len(base_messages) else ("user", "")
    role_col, content_col = st.columns([1, 5])
    role = role_col.selectbox(
        "Role", MESSAGE_ROLES, index=MESSAGE_ROLES.index(role), key=f"editor_role_{index}_{suffix}"
    )
    content = content_col.text_area(
        f"Message {index} (Jinja template)", value=content, height=150, key=f"editor_content_{index}_{suffix}"
    )
    messages.append((role, content))
variables = st.text_area(
    "Variables, one per line: name: type: description (string, integer, number, boolean, list)",
    value=editor.variables_text(base) if base else "",
    key=f"editor_variables_{suffix}",
)
escalation = st.text_area(
    "Escalation rules (YAML list: name, when, action hold / review_after / block; see the README)",
    value=editor.escalation_text(base) if base else "",
    key=f"editor_escalation_{suffix}",
)
change_note = st.text_input("Change note", key=f"editor_note_{suffix}", placeholder="What changed, and why")

try:
    _, version = editor.build_version(
        prompt=prompt,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        messages=messages,
        variables=variables,
        change_note=change_note or "-",
        base=base,
        escalation=escalation,
    )
except QuorumError as problem:
    version = None
    st.warning(literal(f"Not a valid version yet: {problem}"))
if version is not None:
    findings = static_checks(version)
    with db.session_scope() as session:
        book = prices.price_book(session)
    unpriced = book.resolve_model(version.model) not in book.models()
    with st.container(border=True):
        st.markdown("**Static checks**")
        if unpriced:
            st.warning(
                literal(
                    f"warning: {version.model} has no price, so the gateway refuses calls to it "
                    "(model_not_priced) until an admin adds one on Budgets & prices."
                )
            )
        if not findings and not unpriced:
            st.caption("No findings.")
        for finding in findings:
            (st.warning if finding.severity == "error" else st.caption)(
                literal(f"{finding.severity}: {finding.message}")
            )

# The problems are listed above; saving is offered once there are none.
if st.button(
    "Save as draft",
    type="primary",
    key="editor_save",
    disabled=version is None,
    help="Fix the problems listed above first." if version is None else None,
):
    with db.session_scope(write=True) as session, layout.shows_errors("Draft saved"):
        _, version = editor.build_version(
            prompt=prompt,
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            messages=messages,
            variables=variables,
            change_note=change_note,
            base=base,
            escalation=escalation,
        )
        if choice is None:
            store.create_prompt(session=session, actor=actor, prompt=prompt, version=version)
        else:
            store.create_version(session=session, actor=actor, prompt_id=choice, version=version)

if choice is not None:
    drafts = [v for v in detail.versions if v.state == "draft"]
    st.subheader("Drafts of this prompt")
    if not drafts:
        st.caption("No drafts. Save one above.")
    for draft in drafts:
        row = st.columns([4, 1])
        row[0].markdown(f"**v{draft.number}** by " + literal(f"{draft.author} — {draft.change_note}"))
        if row[1].button("Submit for review", key=f"submit_{draft.id}"):
            with db.session_scope(write=True) as session, layout.shows_errors(f"v{draft.number} submitted for review"):
                workflow.submit(session=session, actor=actor, version_id=draft.id)
