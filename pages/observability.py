"""Observability: gateway latency, errors, 429s, cache hits and blocked requests."""

import pandas as pd
import plotly.express as px
import streamlit as st

from core import db, identity
from core.gateway.observability import gateway_metrics
from pages.ui import layout

actor = layout.page_setup(__file__)
st.title("Observability")
days = st.slider("Days", min_value=1, max_value=90, value=14, key="obs_days")

with db.session_scope() as session:
    buckets = gateway_metrics(session, actor=actor, days=days)
    team_names = {t.id: t.name for t in identity.list_teams(session)}

if not buckets:
    st.info("No gateway calls in this period yet.")
    st.stop()

frame = pd.DataFrame([b.__dict__ for b in buckets])
frame["team"] = frame["team_id"].map(lambda t: team_names.get(t, "?"))
total = frame["calls"].sum()
cols = st.columns(5)
cols[0].metric("Calls", int(total))
cols[1].metric("p95 latency (ms, worst day)", f"{frame['p95_ms'].max():.0f}")
cols[2].metric("Error rate", f"{(frame['error_rate'] * frame['calls']).sum() / total:.1%}")
cols[3].metric("Cache hit rate", f"{(frame['cache_hit_rate'] * frame['calls']).sum() / total:.1%}")
cols[4].metric("Blocked", int(frame["blocked"].sum()))
st.plotly_chart(px.line(frame, x="day", y="p95_ms", color="team", line_dash="model", markers=True,
                        title="p95 latency per team and model (ms)"), key="p95_chart")
st.plotly_chart(px.bar(frame, x="day", y=["error_rate", "rate_429", "cache_hit_rate"], barmode="group",
                       title="Error, 429 and cache-hit rates"), key="rates_chart")
st.dataframe(frame[["day", "team", "model", "calls", "p50_ms", "p95_ms", "error_rate", "rate_429",
                    "cache_hit_rate", "blocked", "held"]], hide_index=True, width="stretch", key="obs_table")
