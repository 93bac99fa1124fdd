"""Home's sections, one per role: what that role came to see first.

Each draws from one or two core reads and formats every figure with core.formatting; a
person with several roles sees each of their sections, in the order of `SECTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core import attention, db
from core import formatting as fmt
from core.anomalies import alerts as anomaly_alerts
from core.attention import AttentionItem
from core.audit import home as audit_home
from core.audit import query as audit_query
from core.budgets import home as budget_home
from core.budgets import views as budget_views
from core.catalog import home as catalog_home
from core.experiments import service as experiments
from core.gateway import attention as gateway_attention
from core.identity import key_rotation
from core.permissions import Actor, Role
from core.settings import settings
from pages.ui import charts
from pages.ui.text import literal


def _zone() -> str:
    return settings().timezone


def _items(items: list[AttentionItem], *, empty: str) -> None:
    if not items:
        st.caption(empty)
    for item in items:
        show = {"error": st.error, "warning": st.warning}.get(item.severity, st.info)
        show(f"**{literal(item.title)}**  \n{literal(item.detail)}" if item.detail else literal(item.title))


def _table(rows: list[dict[str, str]], *, key: str) -> None:
    st.dataframe(rows, hide_index=True, width="stretch", key=key)


def finance(actor: Actor) -> None:
    with db.session_scope() as session:
        month = budget_home.month_to_date(session, actor=actor)
        alerts = budget_views.budget_attention(session, actor)
        anomalies = anomaly_alerts.open_for(session, actor, Role.FINANCE)
    st.subheader(f"Spend this month ({month.period_key}, {month.days} days so far)")
    spent, budget = st.columns(2)
    spent.metric("Spent by all teams", fmt.money(month.spent_micro))
    budget.metric("Monthly team budgets", fmt.money(month.budget_micro) if month.budget_micro else fmt.MISSING)
    teams = month.teams
    if teams:
        figure = charts.spend_against_budget(
            [t.team for t in teams],
            [t.spent_micro / 1_000_000 for t in teams],
            [t.budget_micro / 1_000_000 if t.budget_micro is not None else None for t in teams],
            "Spent vs monthly budget per team",
        )
        st.plotly_chart(figure, key="home_finance_chart", config={"displayModeBar": False})
        _table(
            [
                {
                    "Team": t.team,
                    "Spent": fmt.money(t.spent_micro),
                    "Monthly budget": fmt.money(t.budget_micro),
                    "Used": fmt.percent(t.used),
                }
                for t in teams
            ],
            key="home_finance_teams",
        )
    st.markdown("**Top movers** against the same days of last month")
    if month.movers:
        _table(
            [
                {
                    "What": m.kind,
                    "Name": m.name,
                    "This month": fmt.money(m.now_micro),
                    "Same days last month": fmt.money(m.before_micro),
                    "Grew by": fmt.money(m.growth_micro),
                }
                for m in month.movers
            ],
            key="home_finance_movers",
        )
    else:
        st.caption("No team or key spent more than on the same days of last month.")
    _items(alerts, empty="No budget has passed an alert threshold this period.")
    st.markdown("**Unusual spend**")
    _items(anomalies, empty="No open anomaly alert on spend or tokens.")
    st.page_link("pages/spend.py", label="Open Spend", icon=":material/arrow_forward:")
    if anomalies:
        st.page_link("pages/alerts.py", label="Open Alerts", icon=":material/arrow_forward:")


def governance(actor: Actor) -> None:
    zone = _zone()
    with db.session_scope() as session:
        queue = catalog_home.review_queue_by_age(session, actor=actor)
        held = gateway_attention.held_waiting(session, actor=actor)
        alerts = [a for a in attention.open_alerts(session, actor) if a.page != "pages/held_requests.py"]
    st.subheader("Your review queue")
    if queue:
        _table(
            [
                {
                    "Prompt": f"{r.prompt} v{r.version}",
                    "Team": r.team,
                    "Risk": r.risk_tier,
                    "Written by": r.author,
                    "Submitted": fmt.when(r.submitted_at, zone),
                    "Waiting": _days(r.waiting_days),
                    "Approvals": r.approvals,
                }
                for r in queue
            ],
            key="home_governance_queue",
        )
    else:
        st.caption("No version waits for your review.")
    st.page_link("pages/review_queue.py", label="Open the review queue", icon=":material/arrow_forward:")
    left, right = st.columns(2)
    left.metric("Held requests waiting", f"{held.count:,}")
    right.metric("Oldest waiting since", fmt.when(held.oldest_since, zone))
    if held.count:
        st.page_link("pages/held_requests.py", label="Decide held requests", icon=":material/arrow_forward:")
    st.markdown("**Alerts**")
    _items(alerts, empty="No open alerts.")


def engineer(actor: Actor) -> None:
    zone = _zone()
    with db.session_scope() as session:
        mine = catalog_home.own_versions_in_flight(session, actor=actor)
        latest = experiments.list_experiments(session, actor=actor, team_ids=actor.team_ids, limit=5)
        names = audit_query.actor_names(session, [e.created_by for e in latest])
    st.subheader("Your versions in review or sent back")
    if mine:
        _table(
            [
                {
                    "Prompt": f"{v.prompt} v{v.version}",
                    "State": v.state,
                    "Since": fmt.when(v.since, zone),
                    "Last review": fmt.text_or_missing(v.last_review),
                }
                for v in mine
            ],
            key="home_engineer_versions",
        )
    else:
        st.caption("None of your versions is in review or sent back.")
    st.markdown("**Latest experiments of your teams**")
    if latest:
        _table(
            [
                {
                    "Experiment": f"#{e.id} {e.prompt_name}",
                    "Test set": e.testset_name,
                    "Status": e.status,
                    "Cells": f"{e.finished_cells:,} of {e.planned_cells:,}",
                    "Cost": fmt.money(e.billed_micro),
                    "Started": fmt.when(e.created_at, zone),
                    "By": names.get(e.created_by, "the demo seed" if e.created_by.startswith("system:") else "—"),
                }
                for e in latest
            ],
            key="home_engineer_experiments",
        )
    else:
        st.caption("Your teams have run no experiment yet.")
    st.page_link("pages/experiments.py", label="Open Experiments", icon=":material/arrow_forward:")


def auditor(actor: Actor) -> None:
    zone = _zone()
    with db.session_scope() as session:
        standing = audit_home.audit_standing(session, actor=actor)
    st.subheader("The audit chain")
    verified, newest = standing.last_verified, standing.newest_checkpoint
    left, right = st.columns(2)
    left.metric("Last clean verification", fmt.when(verified.at, zone) if verified else "never")
    left.caption(_since(verified, "verification") if verified else "No verification has signed a checkpoint yet.")
    right.metric("Newest checkpoint", fmt.when(newest.at, zone) if newest else "none")
    right.caption(
        _since(newest, "checkpoint") + f" Signed with key {newest.key_id}."
        if newest
        else "No checkpoint has been signed yet."
    )
    st.caption(f"The chain holds {standing.head_seq:,} events.")
    if not standing.signed:
        st.warning(literal(standing.signing_note), icon=":material/lock_open:")
    st.page_link("pages/audit_verify.py", label="Verify the chain now", icon=":material/arrow_forward:")


def admin(actor: Actor) -> None:
    zone = _zone()
    with db.session_scope() as session:
        due = key_rotation.keys_due(session, actor=actor)
        warnings = attention.configuration_warnings(session, actor)
        anomalies = anomaly_alerts.open_for(session, actor, Role.ADMIN)
    st.subheader("Keys due for rotation")
    if due:
        _table(
            [
                {
                    "Team": k.team,
                    "Key": k.name,
                    "Age": _days(k.age_days),
                    "Expires": fmt.when(k.expires_at, zone),
                    "Due": k.reason,
                }
                for k in due
            ],
            key="home_admin_keys",
        )
    else:
        st.caption("No key reaches 90 days or its expiry in the next 14 days.")
    st.page_link("pages/api_keys.py", label="Open API keys", icon=":material/arrow_forward:")
    st.markdown("**Unusual key use**")
    _items(anomalies, empty="No open anomaly alert on keys.")
    st.markdown("**Configuration warnings**")
    _items(warnings, empty="Nothing to fix in the configuration.")


def _days(count: int) -> str:
    return "today" if count == 0 else f"{count:,} day{'s' if count != 1 else ''}"


def _since(mark: audit_home.CheckpointMark, what: str) -> str:
    if mark.events_since == 0:
        return f"Up to event {mark.seq:,}; nothing changed since this {what}."
    return f"Up to event {mark.seq:,}; {mark.events_since:,} events were added since this {what}."


SECTIONS: dict[Role, tuple[str, Callable[[Actor], None]]] = {
    Role.GOVERNANCE_LEAD: ("Governance", governance),
    Role.FINANCE: ("Finance", finance),
    Role.PROMPT_ENGINEER: ("Prompt engineering", engineer),
    Role.AUDITOR: ("Audit", auditor),
    Role.ADMIN: ("Administration", admin),
}
