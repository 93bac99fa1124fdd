"""API keys: admins create (shown once), rotate and revoke the teams' gateway keys."""

import streamlit as st

from core import db
from core.formatting import text_or_missing
from core.identity import keys
from core.identity import people as identity
from pages.ui import confirm, layout
from pages.ui.shown import names_of, when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("API keys")
layout.show_flash()

# The new secret stays on screen until the admin says it was copied: Quorum keeps only its
# hash, so a click elsewhere that made it vanish would leave a key nobody can use.
new_secret = st.session_state.get("new_api_key")
if new_secret:
    shown = st.container(border=True)
    shown.warning("Copy this key now: it is shown only here, and Quorum keeps only its hash.", icon=":material/key:")
    shown.code(new_secret, language=None)
    if shown.button("I have copied it", key="new_api_key_copied", type="primary"):
        del st.session_state["new_api_key"]
        st.rerun()

with db.session_scope() as session:
    teams = identity.list_teams(session)
    key_views = keys.list_keys(session, actor=actor)
team_names = {t.id: t.name for t in teams}
created_by = names_of(k.created_by for k in key_views)

for view in key_views:
    if view.age_warning:
        st.warning(literal(f"{view.prefix}… ({team_names.get(view.team_id, '?')}): {view.age_warning}"))
st.dataframe(
    [
        {
            "Name": text_or_missing(k.label),
            "Key": f"{k.prefix}…",
            "Team": team_names.get(k.team_id, "?"),
            "Status": k.status,
            "Created by": created_by(k.created_by),
            "Age (days)": k.age_days,
            "Expires": when(k.expires_at) if k.expires_at else "never",
            "Last used": when(k.last_used_at) if k.last_used_at else "never",
            "IP allow-list": ", ".join(k.allowed_cidrs) or "any",
        }
        for k in key_views
    ],
    hide_index=True,
    width="stretch",
    key="keys_table",
)


def _remember(created) -> None:
    st.session_state["new_api_key"] = created.secret


create_tab, manage_tab = layout.tabs(["New key", "Rotate or revoke"], key="api_keys_tab")
with create_tab, st.form("create_key", clear_on_submit=True):
    team = st.selectbox(
        "Team", list(team_names), index=None, placeholder="Choose a team", format_func=team_names.get, key="key_team"
    )
    label = st.text_input("Label (the application using it)", key="key_label", max_chars=80)
    expires = st.number_input(
        "Expires after (days, 0 = never)", min_value=0, max_value=3650, value=90, key="key_expires"
    )
    cidrs = st.text_input("Allowed IP ranges (comma-separated CIDRs, empty = any)", key="key_cidrs")
    if st.form_submit_button("Create key", type="primary"):
        if team is None:
            st.error("Choose the team the key is for.", icon=":material/block:")
        else:
            with db.session_scope(write=True) as session, layout.shows_errors("Key created"):
                _remember(
                    keys.create_key(
                        session=session,
                        actor=actor,
                        team_id=team,
                        label=label,
                        expires_days=int(expires) or None,
                        allowed_cidrs=cidrs,
                    )
                )

with manage_tab:
    live = [k for k in key_views if k.status in ("active", "grace")]
    if not live:
        st.caption("No active keys.")
    else:
        by_id = {k.id: k for k in live}
        chosen = st.selectbox(
            "Key",
            list(by_id),
            key="manage_key",
            format_func=lambda i: (
                f"{by_id[i].prefix}… · {team_names.get(by_id[i].team_id, '?')} · {by_id[i].label or 'no label'}"
            ),
        )
        grace = st.number_input(
            "Grace period for the old key (hours)", min_value=0, max_value=720, value=24, key="grace_hours"
        )
        rotate_col, revoke_col = st.columns(2)
        if rotate_col.button("Rotate", key="rotate_key", type="primary"):
            with db.session_scope(write=True) as session, layout.shows_errors("Key rotated"):
                _remember(keys.rotate_key(session=session, actor=actor, key_id=chosen, grace_hours=int(grace)))
        picked = by_id[chosen]
        if confirm.confirmed(
            "revoke_key",
            button="Revoke now",
            target=chosen,
            where=revoke_col,
            question=f"Revoke key {picked.prefix}… ({picked.label or 'no label'}) of "
            f"{team_names.get(picked.team_id, 'its team')}?",
            consequence="Applications using it are refused (401) from the next call; this cannot be undone.",
        ):
            with db.session_scope(write=True) as session, layout.shows_errors("Key revoked"):
                keys.revoke_key(session=session, actor=actor, key_id=chosen)
