"""Playground: try a prompt version (your team's drafts too) on one input, several side by side, as a chat."""

import json

import streamlit as st

from core import db
from core.catalog import views
from core.experiments import playground
from core.formatting import milliseconds, money
from core.identity import people as identity
from pages.ui import layout
from pages.ui.text import literal

# What to type for each variable type (the value is read as JSON unless it is a string).
_INPUT_HINTS = {
    "list": 'JSON, e.g. ["first", "second"]',
    "integer": "A whole number, e.g. 3",
    "number": "A number, e.g. 0.5",
    "boolean": "true or false",
}

actor = layout.page_setup(__file__)
st.title("Playground")
layout.show_flash()

with db.session_scope() as session:
    prompts = views.list_prompts(session, actor=actor)
    my_teams = {t.name for t in identity.list_teams(session) if t.id in actor.team_ids}
if not prompts:
    st.info("The catalog has no prompts yet.")
    st.stop()
# Open on something this person can run: their own team's prompts first, then labelled ones.
prompts.sort(key=lambda p: (p.team not in my_teams, not p.labels, p.name))
by_id = {p.id: p for p in prompts}
prompt_id = st.selectbox(
    "Prompt", list(by_id), format_func=lambda i: f"{by_id[i].name} ({by_id[i].team})", key="pg_prompt"
)
with db.session_scope() as session:
    versions = playground.runnable_versions(session, actor=actor, prompt_id=prompt_id)
if not versions:
    st.info("No version of this prompt is approved yet, and its drafts are for its own team.")
    st.stop()
by_version = {v.id: v for v in versions}

count = int(st.number_input("Variants side by side", min_value=1, max_value=4, value=1, key="pg_count"))
chosen = []
for index, column in enumerate(st.columns(count)):
    with column:
        version_id = st.selectbox(
            "Version",
            list(by_version),
            key=f"pg_version_{index}",
            format_func=lambda i: f"v{by_version[i].number} ({by_version[i].state.replace('_', ' ')})",
        )
        model = st.text_input("Model", value="", placeholder=by_version[version_id].model, key=f"pg_model_{index}")
        # Start from the version's own parameters; keyed by version so picking another resets them.
        own = by_version[version_id]
        temperature = st.slider(
            "Temperature",
            0.0,
            2.0,
            own.temperature if own.temperature is not None else 1.0,
            0.1,
            key=f"pg_temperature_{index}_{version_id}",
        )
        max_tokens = st.number_input(
            "Max output tokens",
            1,
            32000,
            min(own.max_tokens or 512, 32000),
            key=f"pg_max_tokens_{index}_{version_id}",
        )
        chosen.append(
            playground.VariantChoice(
                version_id,
                model.strip() or None,
                {"temperature": temperature, "max_completion_tokens": int(max_tokens)},
            )
        )

st.subheader("Input")
declared = by_version[chosen[0].version_id].variables
variables = {}
for name, kind in declared:
    raw = st.text_area(
        f"{name} ({kind})",
        key=f"pg_var_{prompt_id}_{name}",
        height=68,
        placeholder=_INPUT_HINTS.get(kind, ""),
    )
    if kind == "string":
        variables[name] = raw
    else:
        try:
            variables[name] = json.loads(raw)
        except ValueError:
            variables[name] = raw  # the core check says what is wrong with it
if not declared:
    st.caption("This version declares no variables.")

history = st.session_state.setdefault("pg_history", [])
# Model answers and typed messages are shown as text: Markdown in them could load an image
# from anywhere (a request leaving the machine) or dress up a link.
for turn in history:
    st.chat_message(turn["role"]).markdown(literal(turn["content"]))

run_col, reset_col = st.columns([1, 1])
if run_col.button("Run", type="primary", key="pg_run"):
    with db.session_scope() as session, layout.shows_errors():
        st.session_state["pg_answers"] = playground.run(
            session=session, actor=actor, variants=chosen, variables=variables, history=history
        )
if reset_col.button("New conversation", key="pg_reset"):
    st.session_state["pg_history"], st.session_state["pg_answers"] = [], []
    st.rerun()

_ESCALATION_WORDS = {"hold": "held for a lead", "block": "blocked", "review_after": "delivered and queued for review"}
answers = st.session_state.get("pg_answers") or []
if answers:
    for column, answer in zip(st.columns(len(answers)), answers, strict=True):
        with column, st.container(border=True):
            st.markdown(f"**{literal(answer.label)}**")
            if answer.error:
                st.warning(literal(answer.error))
            else:
                st.markdown(literal(answer.text))
            if answer.escalation:
                action, *fired = answer.escalation
                st.info(
                    literal(
                        f"In production this answer would be {_ESCALATION_WORDS[action]} (rule {', '.join(fired)})"
                    ),
                    icon=":material/front_hand:",
                )
            st.caption(
                f"{answer.input_tokens} in / {answer.output_tokens} out tokens · "
                f"{money(answer.cost_micro)} · {milliseconds(answer.latency_ms)} · {answer.request_id}"
            )
    st.subheader("Continue the chat")
    keep = st.selectbox(
        "Keep the answer of", list(range(len(answers))), key="pg_keep", format_func=lambda i: answers[i].label
    )
    follow_up = st.text_input("Your next message", key="pg_follow_up")
    if st.button("Send", key="pg_send") and follow_up.strip():
        history.extend(
            [{"role": "assistant", "content": answers[keep].text}, {"role": "user", "content": follow_up.strip()}]
        )
        with db.session_scope() as session, layout.shows_errors():
            st.session_state["pg_answers"] = playground.run(
                session=session, actor=actor, variants=chosen, variables=variables, history=history
            )
        st.rerun()
