"""The rate-limit widgets: the admins' form on a team's policy, and the Observability section."""

from __future__ import annotations

import streamlit as st

from core import db
from core.gateway import policies
from core.gateway.rate_limit_report import rate_limit_overview
from core.gateway.rate_limit_rules import MEASURES, SCOPE_LABELS, SCOPES
from core.permissions import Actor
from core.settings import settings
from pages.ui import layout
from pages.ui.shown import when
from pages.ui.text import literal


def edit_form(actor: Actor, team_id: int, team_name: str) -> None:
    """Requests and tokens per window for each key, the whole team and each person (admins)."""
    with db.session_scope() as session:
        current = policies.team_settings(team_id, session).rate_limits
    window = _window_words()
    with st.form(f"rate_limits_form_{team_id}"):
        st.markdown(f"**Rate limits of {literal(team_name)}** (per {window}; empty: no limit)")
        given: dict[str, dict[str, str]] = {}
        for scope in SCOPES:
            left, right = st.columns(2)
            limit = current.of(scope)
            given[scope] = {
                measure: column.text_input(
                    f"{measure.capitalize()} of {SCOPE_LABELS[scope]}",
                    value="" if getattr(limit, measure) is None else str(getattr(limit, measure)),
                    key=f"rl_{scope}_{measure}_{team_id}",
                )
                for column, measure in zip((left, right), MEASURES, strict=True)
            }
        st.caption(
            "Tokens count at admission: the input's upper bound plus max_tokens (or 4,096 when a call sets none). "
            "A reached limit answers 429 rate_limit_exceeded with retry-after."
        )
        if st.form_submit_button("Save rate limits", type="primary"):
            with db.session_scope(write=True) as session, layout.shows_errors("Rate limits saved"):
                policies.set_rate_limits(session=session, actor=actor, team_id=team_id, limits=given)


def overview_section(actor: Actor, days: int) -> None:
    """Observability: each limited scope's use of the current window, and the 429s by team and key."""
    st.subheader("Rate limits")
    with db.session_scope() as session:
        overview = rate_limit_overview(session, actor=actor, days=days)
    if not overview.uses and not overview.refusals:
        st.caption("No team has rate limits; admins set them on Budgets & prices → Team policies.")
        return
    st.caption(
        f"Use of the current window ({_window_words()}, resets in {overview.resets_in_s:,.0f} s) against each limit."
    )
    if overview.uses:
        st.dataframe(
            [
                {
                    "team": u.team,
                    "applies to": u.scope,
                    "who": u.subject,
                    "requests": _of(u.requests, u.requests_limit),
                    "tokens": _of(u.tokens, u.tokens_limit),
                    "requests used": None if u.requests_limit is None else u.requests / u.requests_limit,
                    "tokens used": None if u.tokens_limit is None else u.tokens / u.tokens_limit,
                }
                for u in overview.uses
            ],
            hide_index=True,
            width="stretch",
            key="rl_uses",
            column_config={
                name: st.column_config.ProgressColumn(name, min_value=0.0, max_value=1.0, format="percent")
                for name in ("requests used", "tokens used")
            },
        )
    st.markdown(f"**Calls refused by a rate limit (429), last {days} days**")
    if not overview.refusals:
        st.caption("None.")
        return
    st.dataframe(
        [
            {
                "team": r.team,
                "key": r.key,
                "on requests": r.requests,
                "on tokens": r.tokens,
                "last": when(r.last_at, seconds=True) if r.last_at else "—",
            }
            for r in overview.refusals
        ],
        hide_index=True,
        width="stretch",
        key="rl_refusals",
    )


def _of(used: int, limit: int | None) -> str:
    return f"{used:,}" if limit is None else f"{used:,} / {limit:,}"


def _window_words() -> str:
    seconds = settings().rate_limit_window_s
    return "minute" if seconds == 60 else f"{seconds:,}-second window"
