"""Observability: gateway latency, errors, 429s, cache hits and blocked requests, per team,
model or prompt, over time."""

import pandas as pd
import streamlit as st

from core import db, exports
from core.budgets.money import format_micro
from core.gateway import call_export
from core.gateway.observability import BUCKET_FIELDS, CHART_POINTS, MetricsQuery, filter_options, gateway_metrics
from core.identity import people as identity
from pages.ui import layout, rate_limits
from pages.ui.health_charts import health_figures

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


_labels: dict[tuple, str] = {}


def _label(bucket) -> str:
    """The bucket's group by name ("Support · gpt-4o"): once per group, not per point."""
    key = (bucket.team_id, bucket.model, bucket.prompt)
    label = _labels.get(key)
    if label is None:
        named = {
            "team": teams.get(bucket.team_id, "(no team)"),
            "model": str(bucket.model),
            "prompt": bucket.prompt or "(no catalog prompt)",
        }
        label = _labels[key] = " · ".join(named[d] for d in by) or "all calls"
    return label


def _frame(buckets) -> pd.DataFrame:
    frame = pd.DataFrame({name: [getattr(b, name) for b in buckets] for name in BUCKET_FIELDS})
    if frame.empty:
        return frame
    frame["error_rate"] = frame["errors"] / frame["calls"]
    frame["rate_429"] = frame["rejected_429"] / frame["calls"]
    frame["cache_hit_rate"] = frame["cache_hits"] / frame["calls"]
    frame["group"] = [_label(b) for b in buckets]
    return frame


period_name = granularity if series.hours_per_point == 1 else f"{series.hours_per_point} hours"
if series.hours_per_point > 1:
    st.caption(
        f"Each point of the charts is {series.hours_per_point} hours (from the first hour it holds): "
        f"{days} days of single hours per {' × '.join(by) or 'all calls'} would be more than "
        f"{CHART_POINTS:,} points or take too long to read. Its counts are the hours' sums and its "
        "p50/p95 are read from the hours' latency histograms merged. Choose fewer days, groups or "
        "filters for single hours; the breakdown below is the whole period's."
    )
calls_chart, latency_chart, rates_chart, guarded_chart = health_figures(
    series.buckets,
    label=_label,
    time_of=(lambda period: f"{period}:00") if granularity == "hour" else str,
    period_name=period_name,
)
left, right = st.columns(2)
left.plotly_chart(calls_chart, key="calls_chart")
right.plotly_chart(latency_chart, key="latency_chart")
left, right = st.columns(2)
left.plotly_chart(rates_chart, key="rates_chart")
right.plotly_chart(guarded_chart, key="guarded_chart")

st.subheader("Breakdown over the whole period")
table = _frame(series.totals)
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
