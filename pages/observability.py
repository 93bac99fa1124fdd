"""Observability: gateway latency, errors, 429s, cache hits and blocked requests, per team,
model or prompt, over time."""

import pandas as pd
import streamlit as st

from core import db, exports
from core.budgets.money import format_micro
from core.gateway import call_export
from core.gateway.observability import BUCKET_FIELDS, CHART_POINTS, MetricsQuery, filter_options, gateway_metrics
from core.identity import people as identity
from pages.ui import charts, layout, rate_limits

actor = layout.page_setup(__file__)
st.title("Observability")
st.caption(
    "Every call through the gateway, from the call log. Latency is for answered calls; "
    "p50/p95 are read from a histogram (within 2.5 %). Times are UTC."
)

with db.session_scope() as session:
    teams = {t.id: t.name for t in identity.list_teams(session)}

top = st.columns([2, 1, 2])
days = top[0].slider("Days", min_value=1, max_value=90, value=14, key="obs_days")
granularity = top[1].radio("Per", ["day", "hour"], horizontal=True, key="obs_granularity")
by = top[2].multiselect("Group by", ["team", "model", "prompt"], default=["team"], key="obs_by")
filters = st.columns(3)
team_ids = filters[0].multiselect("Teams", list(teams), format_func=lambda t: teams[t], key="obs_teams")


@st.cache_data(ttl=60, show_spinner=False)
def _options(days: int, actor_ref: str, _actor) -> tuple[list[str], list[str]]:
    # A scan of its own; the models and prompts called change seldom, so a minute-old list will do.
    with db.session_scope() as session:
        return filter_options(session, actor=_actor, days=days)


offered_models, offered_prompts = _options(days, actor.ref, actor)
models = filters[1].multiselect("Models", offered_models, key="obs_models")
prompts = filters[2].multiselect("Prompts", offered_prompts, key="obs_prompts")

query = MetricsQuery(
    days=days,
    by=tuple(by),
    granularity=granularity,
    team_ids=tuple(team_ids),
    models=tuple(models),
    prompts=tuple(prompts),
    max_points=CHART_POINTS if granularity == "hour" else None,
)
with db.session_scope() as session:
    series = gateway_metrics(session, actor=actor, query=query)

if not series.calls:
    st.info("No gateway calls match in this period yet.")
    rate_limits.overview_section(actor, days)  # limits and their use apply whatever the period holds
    st.stop()


def _ms(value):
    return "–" if value is None else f"{value:,.1f}"


first, second = st.columns(4), st.columns(4)
first[0].metric("Calls", f"{series.calls:,}")
first[1].metric("p50 latency (ms)", _ms(series.p50_ms))
first[2].metric("p95 latency (ms)", _ms(series.p95_ms))
first[3].metric("Cost", format_micro(series.cost_micro))
second[0].metric("Error rate (5xx)", f"{series.errors / series.calls:.1%}")
second[1].metric("429 rate (budget)", f"{series.rejected_429 / series.calls:.1%}")
second[2].metric("Cache hit rate", f"{series.cache_hits / series.calls:.1%}")
second[3].metric("Blocked / held", f"{series.blocked:,} / {series.held:,}")
st.caption(
    f"Cost is the call log's over the last {days} days from now (UTC), by when each call began. "
    "Spend shows the ledger per budget month in the budget time zone, by when each call was billed: "
    "over different spans the two totals differ, never for the same calls."
)


def _group_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's group by name ("Support · gpt-4o"), a column at a time: a 90-day per-hour
    view has thousands of rows."""
    named = {
        "team": lambda: frame["team_id"].map(teams).fillna("(no team)").astype(str),
        "model": lambda: frame["model"].astype(str),
        "prompt": lambda: frame["prompt"].fillna("(no catalog prompt)").astype(str),
    }
    if not by:
        return pd.Series("all calls", index=frame.index)
    labels = named[by[0]]()
    for dimension in by[1:]:
        labels = labels + " · " + named[dimension]()
    return labels


def _frame(buckets, *, timed: bool) -> pd.DataFrame:
    frame = pd.DataFrame({name: [getattr(b, name) for b in buckets] for name in BUCKET_FIELDS})
    if frame.empty:
        return frame
    frame["error_rate"] = frame["errors"] / frame["calls"]
    frame["rate_429"] = frame["rejected_429"] / frame["calls"]
    frame["cache_hit_rate"] = frame["cache_hits"] / frame["calls"]
    frame["group"] = _group_labels(frame)
    if timed:  # the whole-period totals have no time
        # ISO text, not datetimes: plotly turns each datetime of an array into text one by one,
        # seconds for 90 days per hour (bench/pages.py); the date axis reads the text the same.
        frame["time"] = frame["period"] + (":00" if granularity == "hour" else "")
    return frame


def _dated(figure):
    return figure.update_xaxes(type="date")


frame = _frame(series.buckets, timed=True)
period_name = granularity if series.hours_per_point == 1 else f"{series.hours_per_point} hours"
if series.hours_per_point > 1:
    st.caption(
        f"Each point of the charts is {series.hours_per_point} hours (from the first hour it holds): "
        f"{days} days of single hours per {' × '.join(by) or 'all calls'} would be more than "
        f"{CHART_POINTS:,} points. Its counts are the hours' sums and its p50/p95 are read from the "
        "hours' latency histograms merged. Choose fewer days, groups or filters for single hours; "
        "the breakdown below is the whole period's."
    )
left, right = st.columns(2)
calls_per_period = frame.groupby("time")["calls"].sum()
left.plotly_chart(
    _dated(
        charts.count_axis(
            charts.bars(frame, x="time", y="calls", color="group", title=f"Calls per {period_name}"),
            calls_per_period.max(),
        )
    ),
    key="calls_chart",
)
latency = (
    frame.rename(columns={"p50_ms": "p50", "p95_ms": "p95"})
    .melt(id_vars=["time", "group"], value_vars=["p50", "p95"], var_name="percentile", value_name="ms")
    .dropna()
)
right.plotly_chart(
    _dated(charts.lines(latency, x="time", y="ms", color="group", dash="percentile", title="Latency p50 and p95 (ms)")),
    key="latency_chart",
)

per_period = frame.groupby("time")[["calls", "errors", "rejected_429", "cache_hits", "blocked", "held"]].sum()
rates = pd.DataFrame(
    {
        "error rate": per_period["errors"] / per_period["calls"],
        "429 rate": per_period["rejected_429"] / per_period["calls"],
        "cache hit rate": per_period["cache_hits"] / per_period["calls"],
    }
).reset_index()
left, right = st.columns(2)
left.plotly_chart(
    _dated(
        charts.percent_axis(
            charts.lines(
                rates.melt(id_vars="time", var_name="rate", value_name="share"),
                x="time",
                y="share",
                color="rate",
                title="Error, 429 and cache-hit rates",
            ),
            float(rates[["error rate", "429 rate", "cache hit rate"]].max().max()),
        )
    ),
    key="rates_chart",
)
right.plotly_chart(
    _dated(
        charts.count_axis(
            charts.bars(
                per_period.reset_index().melt(
                    id_vars="time", value_vars=["blocked", "held"], var_name="outcome", value_name="requests"
                ),
                x="time",
                y="requests",
                color="outcome",
                title="Blocked and held requests",
            ),
            (per_period["blocked"] + per_period["held"]).max(),
        )
    ),
    key="guarded_chart",
)

st.subheader("Breakdown over the whole period")
table = _frame(series.totals, timed=False)
if not table.empty:
    table["cost"] = table["cost_micro"].map(format_micro)
    st.dataframe(
        table[
            [
                "group",
                "calls",
                "p50_ms",
                "p95_ms",
                "error_rate",
                "rate_429",
                "cache_hit_rate",
                "blocked",
                "held",
                "cost",
            ]
        ].sort_values("calls", ascending=False),
        hide_index=True,
        width="stretch",
        key="obs_table",
        column_config={
            name: st.column_config.NumberColumn(format="percent")
            for name in ("error_rate", "rate_429", "cache_hit_rate")
        },
    )
    st.download_button(
        "Download CSV",
        table.to_csv(index=False).encode(),
        file_name="gateway_metrics.csv",
        mime="text/csv",
        key="obs_csv",
    )
    with db.session_scope() as session:
        calls_link = exports.download_link(
            call_export.prepare(
                session=session,
                actor=actor,
                days=days,
                team_ids=team_ids,
                models=models,
                prompts=prompts,
            ),
            owner=actor.ref,
        )
    st.link_button("Every call of this view (CSV)", calls_link, icon=":material/download:", key="obs_calls_export")

rate_limits.overview_section(actor, days)
