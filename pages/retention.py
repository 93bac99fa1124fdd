"""Retention & privacy: classes and rules, legal holds, enforcement with a dry-run preview,
past runs and data-subject requests. Governance leads change things; auditors read."""

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import streamlit as st

from core import db, exports
from core.catalog import views
from core.formatting import text_or_missing
from core.identity import people as identity
from core.permissions import Permission
from core.retention import enforce, holds, privacy, rules
from core.retention import preview as retention_preview
from core.retention.classes import ACTIONS, PAYLOAD_MODES
from core.settings import settings
from pages.ui import confirm, layout, paging
from pages.ui.shown import names_of, when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Retention & privacy")
layout.show_flash()
can_manage = actor.can(Permission.RETENTION_MANAGE)
if not can_manage:
    st.caption("Read-only: governance leads change retention rules, holds and answer subject requests.")

with db.session_scope() as session:
    classes = rules.class_views(session, actor=actor)
    modes = rules.payload_modes(session, actor=actor)
    all_holds = holds.all_holds(session, actor=actor)
    runs_page = enforce.runs_page(session, actor=actor, before=paging.cursor("retention_runs"))
    requests_page = privacy.requests_page(session, actor=actor, before=paging.cursor("retention_requests"))
    teams = {t.id: t.name for t in identity.list_teams(session)}
    people = {p.id: p.display_name for p in identity.list_people(session)}
    prompts = {p.id: p.name for p in views.list_prompts(session, actor=actor)}

zone = ZoneInfo(settings().timezone)
zone_name = settings().timezone
HOLD_FORM_KEYS = ("hold_case", "hold_team", "hold_person", "hold_prompt", "hold_since", "hold_until")


def _local_day(instant: datetime) -> date:
    aware = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return aware.astimezone(zone).date()


def _day_start(day: date | None) -> datetime | None:
    """Midnight at the start of `day` in the deployment's time zone, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=zone) if day else None


classes_tab, holds_tab, enforce_tab, requests_tab = layout.tabs(
    ["Classes", "Legal holds", "Enforcement", "Subject requests"], key="retention_tab"
)

with classes_tab:
    st.dataframe(
        [
            {
                "Class": c.label,
                "Period": text_or_missing(c.period),
                "At expiry": text_or_missing(c.action),
                "Compliance basis": text_or_missing(c.basis),
                "Rule from": text_or_missing(c.source),
                "Team rules": text_or_missing(c.team_rules),
                "Records": text_or_missing(c.record_kinds),
                "Note": text_or_missing(c.note),
            }
            for c in classes
        ],
        hide_index=True,
        width="stretch",
        key="retention_classes",
    )
    st.caption(
        "A legal hold wins over deletion; when several classes apply to a record the longest wins; "
        "a team's own rule wins over the default."
    )
    st.subheader("Stored payloads per team")
    st.dataframe(
        [{"Team": teams.get(t, t), "Request and response text stored": m} for t, m in modes.items()],
        hide_index=True,
        width="stretch",
        key="retention_payload_modes",
    )
    if can_manage:
        by_key = {c.key: c for c in classes}
        with st.form("retention_rule"):
            class_key = st.selectbox(
                "Class", list(by_key), format_func=lambda k: by_key[k].label, key="retention_rule_class"
            )
            team = st.selectbox(
                "Applies to",
                [None, *teams],
                format_func=lambda t: "Everyone (default)" if t is None else teams[t],
                key="retention_rule_team",
            )
            period = st.text_input("Period (e.g. 2y, 18m, 90d)", key="retention_rule_period")
            action = st.selectbox("At expiry", ACTIONS, key="retention_rule_action")
            if st.form_submit_button("Save rule", type="primary"):
                with db.session_scope(write=True) as session, layout.shows_errors("Rule saved"):
                    rules.set_rule(
                        session=session, actor=actor, class_key=class_key, period=period, action=action, team_id=team
                    )
        with st.form("retention_payloads"):
            team = st.selectbox("Team", list(teams), format_func=teams.get, key="retention_payload_team")
            mode = st.selectbox("Store", PAYLOAD_MODES, key="retention_payload_mode")
            if st.form_submit_button("Save payload storage"):
                with db.session_scope(write=True) as session, layout.shows_errors("Payload storage saved"):
                    rules.set_payload_storage_mode(session=session, actor=actor, team_id=team, mode=mode)

with holds_tab:

    def scope(hold) -> str:
        parts = [
            f"team {teams.get(hold.team_id, hold.team_id)}" if hold.team_id else "",
            f"person {people.get(hold.person_id, hold.person_id)}" if hold.person_id else "",
            f"prompt {prompts.get(hold.prompt_id, hold.prompt_id)}" if hold.prompt_id else "",
            f"from {_local_day(hold.starts_at)}" if hold.starts_at else "",
            # Stored as the end's exclusive instant; people name the last day covered.
            f"until {_local_day(hold.ends_at - timedelta(microseconds=1))}" if hold.ends_at else "",
        ]
        return ", ".join(p for p in parts if p)

    st.dataframe(
        [
            {
                "Hold": h.id,
                "Case": h.case_name,
                "Owner": people.get(h.owner_person_id, text_or_missing(h.owner_person_id)),
                "Scope": scope(h) or "everything",
                "Placed": when(h.created_at),
                "Released": when(h.released_at) if h.released_at else "in force",
            }
            for h in all_holds
        ],
        hide_index=True,
        width="stretch",
        key="retention_holds",
    )
    if not all_holds:
        st.caption("No legal holds.")
    if can_manage:
        with st.form("retention_hold_add"):
            case = st.text_input("Case name", key="hold_case", max_chars=120)
            owners = list(people)
            owner = st.selectbox(
                "Owner",
                owners,
                # The person placing the hold owns it unless they name someone else.
                index=owners.index(actor.person_id) if actor.person_id in people else 0,
                format_func=people.get,
                key="hold_owner",
            )
            team = st.selectbox(
                "Team", [None, *teams], format_func=lambda t: "any" if t is None else teams[t], key="hold_team"
            )
            person = st.selectbox(
                "Person", [None, *people], format_func=lambda p: "any" if p is None else people[p], key="hold_person"
            )
            prompt = st.selectbox(
                "Prompt", [None, *prompts], format_func=lambda p: "any" if p is None else prompts[p], key="hold_prompt"
            )
            since_col, until_col = st.columns(2)
            since = since_col.date_input(f"From (first day, {zone_name})", value=None, key="hold_since")
            until = until_col.date_input(f"Until (last day, {zone_name})", value=None, key="hold_until")
            if st.form_submit_button("Place hold", type="primary"):
                with db.session_scope(write=True) as session, layout.shows_errors("Legal hold placed"):
                    holds.add_hold(
                        session=session,
                        actor=actor,
                        case_name=case,
                        owner_person_id=owner,
                        team_id=team,
                        person_id=person,
                        prompt_id=prompt,
                        starts_at=_day_start(since),
                        ends_at=_day_start(until + timedelta(days=1)) if until else None,
                    )
                    # Placed: the next hold starts from an empty form.
                    for key in HOLD_FORM_KEYS:
                        st.session_state.pop(key, None)
        active = [h for h in all_holds if h.released_at is None]
        if active:
            chosen = st.selectbox(
                "Release hold",
                [h.id for h in active],
                key="hold_release_id",
                format_func=lambda i: next(f"{h.id}: {h.case_name}" for h in active if h.id == i),
            )
            released = next(h for h in active if h.id == chosen)
            if confirm.confirmed(
                "hold_release",
                button="Release",
                target=chosen,
                question=f"Release legal hold {released.id}, {released.case_name}?",
                consequence="What it kept becomes subject to retention again and may be deleted "
                "at the next enforcement run.",
            ):
                with db.session_scope(write=True) as session, layout.shows_errors("Legal hold released"):
                    holds.release_hold(session=session, actor=actor, hold_id=chosen)

with enforce_tab:
    st.subheader("Preview (dry run)")
    with db.session_scope() as session, layout.shows_errors():
        preview = retention_preview.preview(session=session, actor=actor)
        st.dataframe(
            [
                {
                    "Class": r.class_key,
                    "Records": r.label,
                    "Rule for": "default" if r.team_id is None else teams.get(r.team_id, r.team_id),
                    "Period": text_or_missing(r.period),
                    "Action": r.action,
                    "Older than": when(r.cutoff) if isinstance(r.cutoff, datetime) else text_or_missing(r.cutoff),
                    "Would handle": r.count,
                    "Samples": ", ".join(str(s["id"]) for s in r.samples) or "—",
                }
                for r in preview
            ],
            hide_index=True,
            width="stretch",
            key="retention_preview",
        )
    if can_manage:
        confirmed = st.checkbox("I have reviewed the preview", key="enforce_confirm")
        if st.button("Enforce now", key="enforce_run", type="primary", disabled=not confirmed):
            with layout.shows_errors("Retention enforced; see past runs"):
                enforce.enforce(actor=actor)
    st.subheader("Past runs")
    run_by = names_of(r.actor for r in runs_page.items)
    st.dataframe(
        [
            {
                "Run": r.id,
                "Started": when(r.started_at),
                "As of": when(r.as_of),
                "Status": r.status,
                "Batches": r.batches,
                "Resumed": r.resumed,
                "By": run_by(r.actor),
                "Handled": ", ".join(f"{k}: {v.get('count', 0):,}" for k, v in json.loads(r.progress_json).items())
                or "nothing",
            }
            for r in runs_page.items
        ],
        hide_index=True,
        width="stretch",
        key="retention_runs",
    )
    paging.controls("retention_runs", runs_page)

with requests_tab:
    request_by = names_of(r.actor for r in requests_page.items)
    st.dataframe(
        [
            {
                "Request": r.id,
                "Kind": r.kind,
                "Subject": text_or_missing(r.subject_ref),
                "By": request_by(r.actor),
                "When": when(r.created_at),
                "Summary": text_or_missing(r.summary_json),
            }
            for r in requests_page.items
        ],
        hide_index=True,
        width="stretch",
        key="retention_requests",
    )
    paging.controls("retention_requests", requests_page)
    if can_manage:
        email = st.text_input("Person's e-mail", key="dsr_email")
        end_user = st.text_input("…or an end-user id (the request's `user` field)", key="dsr_user")
        subject = {"email": email.strip() or None, "end_user": end_user.strip() or None}
        named = subject["email"] or subject["end_user"]
        left, right = st.columns(2)
        if left.button("Prepare access export", key="dsr_export"):
            # A new request drops the previous file first: a failed export must never leave
            # another person's data on offer.
            st.session_state.pop("dsr_document", None)
            with db.session_scope(write=True) as session, layout.shows_errors():
                document = privacy.access_stream(session=session, actor=actor, **subject)
                st.session_state["dsr_document"] = (subject, exports.download_link(document, owner=actor.ref))
        prepared = st.session_state.get("dsr_document")
        if prepared and prepared[0] == subject:
            left.link_button(f"Download JSON for {literal(named)}", prepared[1], key="dsr_download")
            left.caption("The link lasts 15 minutes; prepare the export again after that.")
        if not named:
            right.button("Erase", key="dsr_erase", disabled=True, help="Name a person or an end user first.")
        elif confirm.confirmed(
            "dsr_erase",
            button="Erase",
            target=(subject["email"], subject["end_user"]),
            where=right,
            question=f"Erase what Quorum holds about {named}?",
            consequence="Their stored requests and answers are deleted and their name and e-mail removed "
            "from what is kept (except what a legal hold covers); this cannot be undone.",
        ):
            with db.session_scope(write=True) as session, layout.shows_errors("Subject's data erased"):
                privacy.erase(session=session, actor=actor, **subject)
