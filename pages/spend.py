"""Spend: period to date per team against its budget, a burn-down with forecast, breakdowns, CSV,
and the calls behind a breakdown's row, page by page (all from the ledger's roll-ups)."""

import plotly.graph_objects as go
import streamlit as st

from core import db, exports
from core.budgets import ledger_export, ledger_pages, reports, views
from core.formatting import money
from pages.ui import charts, layout
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Spend")
layout.show_flash()

with db.session_scope() as session:
    overview = reports.team_overview(session, actor=actor)

st.subheader("Period to date, per team")
st.metric("Spent by all teams this period", money(sum(row.spent_micro for row in overview)))
st.dataframe(views.overview_table(overview), hide_index=True, width="stretch", key="overview_table")
# The CSV keeps exact micro-dollars and stable column names, for reconciling and charge-back.
st.download_button(
    "Download CSV",
    reports.csv_bytes(reports.overview_frame(overview)),
    file_name="spend-by-team.csv",
    mime="text/csv",
    key="overview_csv",
)

teams = {row.team_id: row for row in overview}
if teams:
    st.subheader("Burn-down")
    nearest = views.nearest_its_limit(overview)
    choices = list(teams)
    team_id = st.selectbox(
        "Team",
        choices,
        index=choices.index(nearest.team_id) if nearest else 0,
        format_func=lambda t: teams[t].team,
        key="burndown_team",
    )
    chosen = teams[team_id]
    with db.session_scope() as session:
        curve = reports.burndown(session, actor=actor, team_id=team_id)
    figure = go.Figure()
    for kind, dash in (("actual", "solid"), ("forecast", "dot")):
        part = curve[curve["kind"] == kind]
        figure.add_scatter(
            x=part["day"],
            y=part["cumulative_micro"] / 1e6,
            name=kind,
            line={"dash": dash},
            customdata=part["cumulative_micro"].map(money),
            hovertemplate="%{x}: %{customdata}<extra>" + kind + "</extra>",
        )
    if chosen.cap_micro:
        figure.add_hline(y=chosen.cap_micro / 1e6, line_dash="dash", line_color="red", annotation_text="budget")
    figure.update_layout(yaxis_title="Spent so far", yaxis_tickprefix="$", height=320, margin={"t": 20, "b": 20})
    st.plotly_chart(figure, key="burndown_chart")
    crossing = f", crossing the budget on {chosen.crosses_on.isoformat()}" if chosen.crosses_on else ""
    st.caption(
        literal(
            f"At the run rate so far, {chosen.team} ends {chosen.period.key} at "
            f"{money(chosen.forecast_micro)}{crossing}."
        )
    )

st.subheader("Breakdown")
months = reports.recent_months()
left, middle, right = st.columns(3)
month = left.selectbox("Month", months, format_func=lambda p: p.key, key="breakdown_month")
team_filter = middle.selectbox(
    "Team", [None, *teams], key="breakdown_team", format_func=lambda t: "All teams" if t is None else teams[t].team
)
by = right.selectbox("By", ["model", "prompt", "person", "day", "team"], key="breakdown_by")
with db.session_scope() as session:
    breakdown = reports.breakdown(session, actor=actor, period=month, by=by, team_id=team_filter)
table = breakdown.frame
st.metric(f"Total for {month.key}", money(breakdown.total_micro))
if len(table) and by != "day":
    top = table.head(15).assign(dollars=table["cost_micro"] / 1e6)
    chart = charts.bars(top, x=by, y="dollars", color=by, title=f"Cost by {by}, {month.key}")
    chart.update_layout(showlegend=False, yaxis_tickprefix="$", height=300, margin={"t": 40, "b": 20})
    st.plotly_chart(chart, key="breakdown_chart")
elif len(table):
    daily = table.assign(dollars=table["cost_micro"] / 1e6, series="cost")
    chart = charts.lines(daily, x="day", y="dollars", color="series", title=f"Cost per day, {month.key}")
    chart.update_layout(showlegend=False, yaxis_tickprefix="$", height=300, margin={"t": 40, "b": 20})
    st.plotly_chart(chart, key="breakdown_chart")
st.dataframe(views.breakdown_table(breakdown), hide_index=True, width="stretch", key="breakdown_table")
st.download_button(
    "Download CSV",
    reports.csv_bytes(table),
    file_name=f"spend-{month.key}-by-{by}.csv",
    mime="text/csv",
    key="breakdown_csv",
)
with db.session_scope() as session:
    ledger_link = exports.download_link(
        ledger_export.prepare(session=session, actor=actor, month=month, team_id=team_filter), owner=actor.ref
    )
st.link_button(
    f"Every call of {month.key} (CSV, for charge-back)", ledger_link, icon=":material/download:", key="ledger_export"
)

if len(table):
    st.subheader("Calls")
    group = st.selectbox(f"Calls of the {by}", list(table[by]), key="calls_group")
    # The cursors of the pages seen so far, for going back; reset when the selection changes.
    selection = (month.key, team_filter, by, group)
    if st.session_state.get("calls_selection") != selection:
        st.session_state["calls_selection"], st.session_state["calls_cursors"] = selection, [None]
    cursors = st.session_state["calls_cursors"]
    with db.session_scope() as session:
        page = ledger_pages.calls_page(session, actor=actor, breakdown=breakdown, group=group, after=cursors[-1])
    st.dataframe(page.frame, hide_index=True, width="stretch", key="calls_table")
    back, number, forward = st.columns([1, 2, 1])
    number.caption(f"Page {len(cursors)}, newest first")
    # Callbacks run before the rerun the click causes: one run per click, not two.
    back.button("Newer", key="calls_newer", disabled=len(cursors) == 1, on_click=cursors.pop)
    forward.button("Older", key="calls_older", disabled=page.next is None, on_click=cursors.append, args=(page.next,))
