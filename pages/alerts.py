"""Alerts: anomalies the detectors found over the hourly roll-ups, as work items."""

import plotly.graph_objects as go
import streamlit as st

from core import clock, db
from core.anomalies import alerts, deliveries, history, notify, run, tuning
from core.anomalies.detectors import DETECTORS
from core.identity import people as identity
from core.permissions import Permission
from pages.ui import layout
from pages.ui.confirm import confirmed
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Alerts")
layout.show_flash()
st.caption(
    "Spend and token surges, failure rates jumping, keys doing what they never did, answers drifting "
    "after a change: each compared with its own usual for that hour of the week. Times are UTC."
)

# The first view after an hour closes detects it (one cheap read when nothing is due).
run.detect_if_due()

may_manage = actor.can(Permission.ALERT_MANAGE)
show_resolved = st.toggle("Show resolved alerts too", key="alerts_show_resolved")
states = ("open", "acknowledged", "resolved") if show_resolved else alerts.OPEN_STATES
with db.session_scope() as session:
    views = alerts.list_alerts(session, actor=actor, states=states)


def _settings() -> None:
    """Admins: each detector's sensitivity, the webhooks (shown masked) and how their latest
    posts ended; a webhook whose newest post failed is also said above, expander closed or not."""
    if not actor.can(Permission.ALERT_CONFIGURE):
        return
    with db.session_scope() as session:
        posted = deliveries.list_deliveries(session, actor=actor, per_target=10)
    for target in posted:
        if target.failing and target.configured:
            last = target.deliveries[0]
            st.warning(
                f"The webhook of {literal(target.name)} is failing: its last post "
                f"({literal(last.kind)}, {last.finished_at:%Y-%m-%d %H:%M} UTC) failed after "
                f"{last.attempts} attempt(s) with {literal(last.detail)}.",
                icon=":material/webhook:",
            )
    with st.expander("Sensitivity and webhooks"):
        with db.session_scope() as session:
            teams = {t.id: t.name for t in identity.list_teams(session)}
            hooks = notify.list_webhooks(session, actor=actor)
        left, middle, right = st.columns(3)
        detector = left.selectbox(
            "Detector", list(DETECTORS), format_func=lambda d: DETECTORS[d].label, key="sens_detector"
        )
        team = middle.selectbox("Team", [0, *teams], format_func=lambda t: teams.get(t, "Every team"), key="sens_team")
        factor = right.number_input("Factor (above 1 fires less)", 0.25, 10.0, 1.0, 0.25, key="sens_factor")
        if st.button("Save sensitivity", key="sens_save"):
            with db.session_scope(write=True) as session, layout.shows_errors("Sensitivity saved"):
                tuning.set_sensitivity(session, actor=actor, detector=detector, team_id=team, factor=factor)
        st.dataframe(
            [
                {
                    "webhook of": f"{h.scope} {teams.get(int(h.ref), h.ref) if h.scope == 'team' else h.ref}",
                    "URL": h.url_masked,
                }
                for h in hooks
            ],
            hide_index=True,
            key="hooks_table",
        )
        _deliveries(posted)


def _deliveries(posted: list[deliveries.TargetDeliveries]) -> None:
    st.markdown("**Latest deliveries**")
    if not posted:
        st.caption("No webhook set, nothing posted.")
    for target in posted:
        state = " · **failing**" if target.failing else ""
        removed = " · setting removed" if not target.configured else ""
        st.caption(f"Webhook of {literal(target.name)}{state}{removed}")
        if not target.deliveries:
            st.caption("Nothing posted yet.")
            continue
        st.dataframe(
            [
                {
                    "when (UTC)": f"{post.finished_at:%Y-%m-%d %H:%M}",
                    "what": f"{post.kind}: {post.about}",
                    "status": f"{post.status} ({post.detail})" if post.detail else post.status,
                    "attempts": post.attempts,
                    "to": post.url_masked,
                }
                for post in target.deliveries
            ],
            hide_index=True,
            width="stretch",
            key=f"deliveries_{target.scope}_{target.ref}",
        )


_settings()

if not views:
    st.info("No alert is open: nothing unusual in the hours detected so far.")
    st.stop()

st.dataframe(
    [
        {
            "alert": f"#{v.id}",
            "what": v.label,
            "team": v.team,
            "state": v.state,
            "hours": v.hours,
            "last hour (UTC)": f"{v.last_hour:%Y-%m-%d %H:00}",
            "in words": v.sentence,
        }
        for v in views
    ],
    hide_index=True,
    width="stretch",
    key="alerts_table",
)

chosen = st.selectbox(
    "Alert",
    [v.id for v in views],
    format_func=lambda i: next(f"#{v.id} {v.label} · {v.team or '–'} · {v.state}" for v in views if v.id == i),
    key="alerts_chosen",
)
view = next(v for v in views if v.id == chosen)
with st.container(border=True):
    st.markdown(f"**#{view.id} {literal(view.label)}** · {literal(view.state)}")
    st.text(view.sentence)
    if view.note:
        st.caption("Note: " + literal(view.note))

    with db.session_scope() as session:
        past = history.alert_history(session, actor=actor, alert_id=view.id)
    figure = go.Figure()
    if past.high:
        figure.add_trace(go.Scatter(x=past.hours, y=past.high, mode="lines", line={"width": 0}, showlegend=False))
        figure.add_trace(
            go.Scatter(x=past.hours, y=past.low, mode="lines", line={"width": 0}, fill="tonexty", name="usual")
        )
    # Money as dollars, rates as percentages.
    scale = {"usd": 1e-6, "rate": 100.0}.get(past.unit, 1.0)
    values = [v * scale for v in past.values]
    if past.high:
        figure.data[0].y = [v * scale for v in past.high]
        figure.data[1].y = [v * scale for v in past.low]
    figure.add_trace(go.Scatter(x=past.hours, y=values, mode="lines", name="observed"))
    marked = [values[past.hours.index(h)] for h in past.marked if h in past.hours]
    figure.add_trace(
        go.Scatter(x=past.marked[: len(marked)], y=marked, mode="markers", marker={"size": 11}, name="anomaly")
    )
    unit_title = {"usd": "spend per hour", "rate": "% of calls", "tokens": "tokens per hour", "calls": "calls per hour"}
    figure.update_layout(yaxis_title=unit_title.get(past.unit, ""), height=320, margin={"t": 30})
    figure.update_yaxes(tickprefix="$" if past.unit == "usd" else "", tickformat=",.2f" if past.unit == "usd" else ",")
    st.plotly_chart(figure, key=f"alert_chart_{view.id}")

    if actor.can(Permission.OBSERVABILITY_READ) and st.button("Calls of this hour in Observability", key="to_calls"):
        days = max(1, (clock.now() - view.first_hour).days + 1)
        st.session_state["obs_days"] = min(days, 90)
        st.session_state["obs_granularity"] = "hour"
        st.session_state["obs_by"] = ["team"]
        st.session_state["obs_teams"] = [view.team_id] if view.team_id else []
        st.switch_page("pages/observability.py")

    if may_manage and view.state != "resolved":
        note = st.text_input("Note", key=f"alert_note_{view.id}", help="Required to resolve: what it was.")
        left, right = st.columns(2)
        if view.state == "open" and left.button("Acknowledge", key=f"alert_ack_{view.id}"):
            with db.session_scope(write=True) as session, layout.shows_errors(f"Alert #{view.id} acknowledged"):
                alerts.acknowledge(session, actor=actor, alert_id=view.id, note=note)
        if confirmed(
            f"alert_resolve_{view.id}",
            button="Resolve",
            target=view.id,
            question=f"Resolve alert #{view.id} ({view.label})?",
            consequence="It leaves the open list and Home; the incident stays in the audit log.",
            where=right,
        ):
            with db.session_scope(write=True) as session, layout.shows_errors(f"Alert #{view.id} resolved"):
                alerts.resolve(session, actor=actor, alert_id=view.id, note=note)
