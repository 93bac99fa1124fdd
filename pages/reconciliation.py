"""Reconciliation & month close: the ledger against the provider's bill per day, usage that
bypassed Quorum, closing and reopening months, and chargeback statements."""

from datetime import timedelta

import plotly.graph_objects as go
import streamlit as st

from core import clock, db, exports
from core.budgets import reports
from core.finance import close, reconcile, statements
from core.finance.explain import KIND_LABELS
from core.formatting import money
from core.identity import cost_centers
from core.identity import people as identity
from core.permissions import Permission
from pages.ui import layout
from pages.ui.confirm import confirmed
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Reconciliation & month close")
layout.show_flash()
reconciliation_tab, close_tab, statement_tab = layout.tabs(
    ["Reconciliation", "Month close", "Statements"], key="finance_tabs"
)

yesterday = clock.now().date() - timedelta(days=1)

with reconciliation_tab:
    if actor.can(Permission.RECONCILE):
        first_col, last_col, run_col = st.columns([2, 2, 1], vertical_alignment="bottom")
        first = first_col.date_input("From (UTC day)", yesterday - timedelta(days=6), key="reconcile_from")
        last = last_col.date_input("To (UTC day)", yesterday, key="reconcile_to")
        if run_col.button("Reconcile", key="reconcile_run", type="primary"):
            with layout.shows_errors():
                results = reconcile.reconcile_days(actor=actor, first=first, last=last)
                counts = {r.status: sum(1 for x in results if x.status == r.status) for r in results}
                layout.flash("Reconciled: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
                st.rerun()
    with db.session_scope() as session:
        days = reconcile.day_statuses(session, actor=actor, first=yesterday - timedelta(days=29), last=yesterday)
    for day in days:
        if day.bypass_tokens:
            # A warning, not an error box: the page worked; what it found needs someone's attention.
            st.warning(
                literal(
                    f"Usage that bypassed Quorum on {day.day}: {day.bypass_tokens:,} tokens, "
                    f"{money(day.bypass_micro)} billed by the provider. See the day's differences below."
                ),
                icon=":material/gpp_bad:",
            )
    if not days:
        st.info("No day of the last 30 has been reconciled yet.")
    else:
        figure = go.Figure(
            data=[
                go.Bar(x=[d.day for d in days], y=[d.quorum_micro / 1e6 for d in days], name="Quorum's ledger"),
                go.Bar(x=[d.day for d in days], y=[d.provider_micro / 1e6 for d in days], name="Provider's bill"),
            ],
            layout={"barmode": "group", "yaxis_title": "USD per day", "height": 320, "margin": {"t": 20, "b": 20}},
        )
        st.plotly_chart(figure, key="reconcile_chart")
        st.dataframe(
            [
                {
                    "day": d.day,
                    "status": d.status,
                    "Quorum": money(d.quorum_micro),
                    "provider": money(d.provider_micro),
                    "difference": money(d.provider_micro - d.quorum_micro),
                    "summary": d.message,
                }
                for d in reversed(days)
            ],
            hide_index=True,
            width="stretch",
            key="reconcile_days",
        )
        by_day = {d.day: d for d in days}
        differing = [d.day for d in reversed(days) if d.status != "matched"] or [days[-1].day]
        chosen = st.selectbox("Differences of the day", differing, key="reconcile_day")
        with db.session_scope() as session:
            lines = reconcile.run_lines(session, actor=actor, run_id=by_day[chosen].run_id)
        if by_day[chosen].status == "unreachable":
            st.warning(literal(by_day[chosen].message), icon=":material/cloud_off:")
        st.dataframe(
            [
                {
                    "kind": KIND_LABELS.get(line.kind, line.kind),
                    "model": line.model,
                    "provider project": line.project_id,
                    "provider key": line.api_key_id,
                    "Quorum tokens": line.quorum_input_tokens + line.quorum_output_tokens,
                    "provider tokens": line.provider_input_tokens + line.provider_output_tokens,
                    "Quorum": money(line.quorum_micro),
                    "provider": money(line.provider_micro),
                    "explanation": line.explanation,
                }
                for line in lines
            ],
            hide_index=True,
            width="stretch",
            key="reconcile_lines",
        )

with close_tab:
    with db.session_scope() as session:
        closed = close.closed_months(session, actor=actor)
    closed_keys = {m.month for m in closed}
    if closed:
        st.dataframe(
            [
                {
                    "month": m.month,
                    "closed by": m.closed_by,
                    "closed at": f"{m.closed_at:%Y-%m-%d %H:%M} UTC",
                    "reopen requested": f"{m.pending_requested_by}: {m.pending_reason}" if m.pending_request_id else "",
                }
                for m in closed
            ],
            hide_index=True,
            width="stretch",
            key="closed_months",
        )
    else:
        st.info("No month is closed yet.")
    if actor.can(Permission.MONTH_CLOSE):
        st.subheader("Close a month")
        past = [p.key for p in reports.recent_months(6)[1:] if p.key not in closed_keys]
        if past:
            month = st.selectbox("Month", past, key="close_month")
            if confirmed(
                "close_month_button",
                button="Close month",
                target=month,
                question=f"Close {month} for every team?",
                consequence="Its ledger, prices and reconciliation freeze; reopening needs an admin's approval.",
                primary=True,
            ):
                with layout.shows_errors(f"{month} is closed."), db.session_scope(write=True) as session:
                    close.close_month(session=session, actor=actor, month=month)
        if closed_keys:
            st.subheader("Ask to reopen a month")
            reopen = st.selectbox("Closed month", sorted(closed_keys, reverse=True), key="reopen_month")
            reason = st.text_area("Why it must be reopened", key="reopen_reason")
            if st.button("Ask an admin to reopen it", key="reopen_request"):
                with layout.shows_errors("Asked; an admin must approve."), db.session_scope(write=True) as session:
                    close.request_reopen(session=session, actor=actor, month=reopen, reason=reason)
    waiting = [m for m in closed if m.pending_request_id]
    if waiting and actor.can(Permission.MONTH_REOPEN_APPROVE):
        st.subheader("Reopen requests")
        for m in waiting:
            st.write(literal(f"{m.month}: {m.pending_requested_by} asks to reopen it: {m.pending_reason}"))
            approve, reject = st.columns(2)
            with approve:
                if confirmed(
                    f"approve_{m.pending_request_id}",
                    button="Approve and reopen",
                    target=m.pending_request_id,
                    question=f"Reopen {m.month}?",
                    consequence="Its ledger, prices and reconciliation can change again until it is closed anew.",
                ):
                    with layout.shows_errors(f"{m.month} is open again."), db.session_scope(write=True) as session:
                        close.decide_reopen(session=session, actor=actor, request_id=m.pending_request_id, approve=True)
            if reject.button("Reject", key=f"reject_{m.pending_request_id}"):
                with layout.shows_errors("Rejected; the month stays closed."), db.session_scope(write=True) as session:
                    close.decide_reopen(session=session, actor=actor, request_id=m.pending_request_id, approve=False)

with statement_tab:
    if not closed_keys:
        st.info("Statements are made for closed months: close one on the Month close tab.")
    else:
        with db.session_scope() as session:
            teams = {t.id: t.name for t in identity.list_teams(session)}
        left, right = st.columns(2)
        month = left.selectbox("Closed month", sorted(closed_keys, reverse=True), key="statement_month")
        team_id = right.selectbox("Team", list(teams), format_func=lambda t: teams[t], key="statement_team")
        found = None
        with layout.shows_errors(), db.session_scope() as session:
            found = statements.statement(session, actor=actor, month=month, team_id=team_id)
            link = exports.download_link(
                statements.statement_export(session, actor=actor, month=month, team_id=team_id), owner=actor.ref
            )
            st.subheader(literal(f"Chargeback statement: {found.team}, {found.month}"))
            if found.ledger_changed_since_close:
                st.error("The ledger of this month changed after it was closed.", icon=":material/report:")
            spent, budget, center = st.columns(3)
            spent.metric("Spent", money(found.total_micro))
            budget.metric("Budget", "none" if found.budget_micro is None else money(found.budget_micro))
            center.metric("Cost center", found.cost_center or "not set")
            st.caption(literal(f"Reconciliation of the month: {found.reconciliation}"))
            for section in statements.SECTIONS:
                st.markdown(f"**By {section}**")
                st.dataframe(
                    [
                        {
                            section: line.name,
                            "calls": line.calls,
                            "input tokens": line.input_tokens,
                            "output tokens": line.output_tokens,
                            "cost": money(line.cost_micro),
                        }
                        for line in found.section(section)
                    ],
                    hide_index=True,
                    width="stretch",
                    key=f"statement_{section}",
                )
            st.link_button("Download the statement (CSV)", link, icon=":material/download:", key="statement_csv")
            st.caption("To print it, use the browser's print: the page prints as shown.")
        if found is not None and actor.can(Permission.TEAM_MANAGE):
            code = st.text_input("Cost-center code of the team", found.cost_center, key="cost_center")
            if st.button("Save the cost center", key="cost_center_save"):
                with layout.shows_errors("Cost center saved."), db.session_scope(write=True) as session:
                    cost_centers.set_cost_center(session=session, actor=actor, team_id=team_id, code=code)
