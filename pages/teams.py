"""Teams & people: the directory. Admins create teams, add people and grant roles."""

import streamlit as st

from core import db
from core.identity import people as identity
from core.permissions import ROLE_LABELS, Permission, Role
from pages.ui import layout

actor = layout.page_setup(__file__)
st.title("Teams & people")
layout.show_flash()
can_edit = actor.can(Permission.TEAM_MANAGE)

with db.session_scope() as session:
    teams = identity.list_teams(session)
    people = identity.list_people(session)
team_names = {t.id: t.name for t in teams}
role_options = [r.value for r in Role]

st.subheader("People")
st.dataframe(
    [
        {
            "name": p.display_name,
            "e-mail": p.email,
            "roles": ", ".join(ROLE_LABELS[r] for r in p.roles) or "—",
            "teams": ", ".join(team_names.get(t, "?") for t in p.team_ids) or "—",
            "active": p.active,
        }
        for p in people
    ],
    hide_index=True,
    width="stretch",
    key="people_table",
)
st.subheader("Teams")
st.dataframe(
    [
        {"team": t.name, "description": t.description or "—", "members": sum(t.id in p.team_ids for p in people)}
        for t in teams
    ],
    hide_index=True,
    width="stretch",
    key="teams_table",
)

if not can_edit:
    st.caption("Read-only: only admins change the directory.")
    st.stop()

create_team, add_person, roles_tab, members_tab = layout.tabs(
    ["New team", "New person", "Roles", "Memberships"], key="teams_tab"
)

with create_team, st.form("create_team", clear_on_submit=True):
    name = st.text_input("Team name", key="team_name", max_chars=80)
    description = st.text_area("Description", key="team_description", max_chars=500)
    if st.form_submit_button("Create team", type="primary"):
        with db.session_scope(write=True) as session, layout.shows_errors(f"Team {name.strip()!r} created"):
            identity.create_team(session=session, actor=actor, name=name, description=description)

with add_person, st.form("add_person"):
    email = st.text_input("E-mail", key="person_email")
    display_name = st.text_input("Name", key="person_name")
    roles = st.multiselect("Roles", role_options, format_func=lambda r: ROLE_LABELS[Role(r)], key="person_roles")
    member_of = st.multiselect("Teams", list(team_names), format_func=team_names.get, key="person_teams")
    if st.form_submit_button("Add person", type="primary"):
        with db.session_scope(write=True) as session, layout.shows_errors(f"{display_name.strip()} added"):
            identity.add_person(
                session=session, actor=actor, email=email, display_name=display_name, roles=roles, team_ids=member_of
            )

people_by_id = {p.id: p for p in people}
with roles_tab:
    who = st.selectbox(
        "Person", list(people_by_id), format_func=lambda i: people_by_id[i].display_name, key="role_person"
    )
    role = st.selectbox("Role", role_options, format_func=lambda r: ROLE_LABELS[Role(r)], key="role_role")
    grant_col, revoke_col = st.columns(2)
    if grant_col.button("Grant role", key="grant_role", type="primary"):
        with db.session_scope(write=True) as session, layout.shows_errors("Role granted"):
            identity.grant_role(session=session, actor=actor, person_id=who, role=role)
    if revoke_col.button("Revoke role", key="revoke_role"):
        with db.session_scope(write=True) as session, layout.shows_errors("Role revoked"):
            identity.revoke_role(session=session, actor=actor, person_id=who, role=role)

with members_tab:
    member = st.selectbox(
        "Person", list(people_by_id), format_func=lambda i: people_by_id[i].display_name, key="member_person"
    )
    team = st.selectbox("Team", list(team_names), format_func=team_names.get, key="member_team")
    add_col, remove_col = st.columns(2)
    if add_col.button("Add to team", key="add_member", type="primary"):
        with db.session_scope(write=True) as session, layout.shows_errors("Added to the team"):
            identity.add_member(session=session, actor=actor, team_id=team, person_id=member)
    if remove_col.button("Remove from team", key="remove_member"):
        with db.session_scope(write=True) as session, layout.shows_errors("Removed from the team"):
            identity.remove_member(session=session, actor=actor, team_id=team, person_id=member)
