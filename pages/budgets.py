"""Budgets & prices: finance and admins set budgets; admins set model allow-lists and override prices."""

import streamlit as st

from core import db
from core.budgets import alerts, config, periods, prices, views
from core.formatting import percent, text_or_missing, tokens
from core.gateway import moderation
from core.gateway import policies as gateway_policies
from core.identity import people as identity
from core.permissions import Permission
from pages.ui import confirm, layout, rate_limits
from pages.ui.shown import when
from pages.ui.text import literal

actor = layout.page_setup(__file__)
st.title("Budgets & prices")
layout.show_flash()
can_edit = actor.can(Permission.BUDGET_MANAGE)
can_price = actor.can(Permission.PRICE_MANAGE)
can_models = actor.can(Permission.MODEL_MANAGE)
CACHE_LABELS = {
    "deterministic": "deterministic calls only (temperature 0 or a seed)",
    "all": "every identical call, sampled ones too (same answer for 5 minutes)",
    "off": "off",
}

with db.session_scope() as session:
    rows = views.budget_rows(session, actor=actor)
    alert_rows = alerts.list_alerts(session)
    teams = {t.id: t.name for t in identity.list_teams(session)}
    people = {p.id: p.display_name for p in identity.list_people(session)} if can_edit else {}
    prompt_names = views.prompt_choices(session, actor=actor) if can_edit else {}
    models = prices.price_book(session).models()
    price_rows = prices.list_prices(session, actor=actor)
    policies = {t: config.team_policy(session, t) for t in teams}

budgets_tab, alerts_tab, policy_tab, prices_tab = layout.tabs(
    ["Budgets", "Alerts", "Team policies", "Prices"], key="budgets_tab_choice"
)

with budgets_tab:
    st.dataframe(
        [
            {
                "Scope": r.scope,
                "For": r.target,
                "Period": r.period_key,
                "Cap": r.cap,
                "Token cap": tokens(r.cap_tokens),
                "Spent": r.spent,
                "Reserved": r.reserved,
                "Used": percent(r.percent / 100 if r.percent is not None else None, digits=1),
                "Enforcement": "hard" if r.hard else "soft",
                "Alerts at %": text_or_missing(r.thresholds),
                "Per-request cap": r.per_request_cap,
                "Webhook": text_or_missing(r.webhook),
            }
            for r in rows
        ],
        hide_index=True,
        width="stretch",
        key="budgets_table",
    )
    if not can_edit:
        st.caption("Read-only: finance and admins change budgets.")
    else:
        st.markdown("**Set a budget** (replaces the existing one for the same team, person or prompt)")
        # Outside the form, so that choosing a scope shows that scope's picker only.
        scope = st.selectbox("Scope", config.SCOPES, key="budget_scope")
        with st.form("budget_form"):
            if scope == "team":
                target = st.selectbox("Team", list(teams), format_func=teams.get, key="budget_team")
            elif scope == "person":
                target = st.selectbox("Person", list(people), format_func=people.get, key="budget_person")
            else:
                target = st.selectbox(
                    "Prompt",
                    list(prompt_names),
                    format_func=prompt_names.get,
                    key="budget_prompt",
                    placeholder="No prompt in the catalog yet",
                )
            cap = st.text_input("Cap in USD (empty: none)", key="budget_cap")
            cap_tokens = st.number_input(
                "Cap in tokens (0: none)", min_value=0, max_value=config.MAX_TOKEN_CAP, step=1000, key="budget_tokens"
            )
            period = st.selectbox("Period", periods.PERIODS, format_func=periods.PERIOD_LABELS.get, key="budget_period")
            thresholds = st.text_input("Alert thresholds, %", value="50, 80, 100", key="budget_thresholds")
            hard = st.checkbox(
                "Hard: refuse calls that do not fit (otherwise alert only)", value=True, key="budget_hard"
            )
            per_request = st.text_input("Per-request cap in USD (empty: none)", key="budget_per_request")
            webhook = st.text_input("Alert webhook URL (optional)", key="budget_webhook")
            if st.form_submit_button("Save budget", type="primary"):
                data = config.BudgetInput(
                    cap_usd=cap or None,
                    cap_tokens=int(cap_tokens) or None,
                    period=period,
                    thresholds=thresholds,
                    hard=hard,
                    max_request_usd=per_request or None,
                    webhook_url=webhook or None,
                )
                if target is None:
                    st.error(f"Choose a {scope} for the budget.")
                else:
                    with db.session_scope(write=True) as session, layout.shows_errors("Budget saved"):
                        config.set_budget(session=session, actor=actor, scope=scope, target_id=target, data=data)
        if rows:
            labels = {r.id: f"{r.scope}: {r.target}" for r in rows}
            doomed = st.selectbox("Budget to remove", list(labels), format_func=labels.get, key="budget_delete_pick")
            if confirm.confirmed(
                "budget_delete",
                button="Remove budget",
                target=doomed,
                question=f"Remove the budget {labels[doomed]}?",
                consequence="Calls it covers are no longer capped by it and its alerts stop; "
                "the spend already recorded stays.",
            ):
                with db.session_scope(write=True) as session, layout.shows_errors("Budget removed"):
                    config.delete_budget(session=session, actor=actor, budget_id=doomed)

with alerts_tab:
    labels = {r.id: f"{r.scope}: {r.target}" for r in rows}
    st.dataframe(
        [
            {
                "Budget": labels.get(a.budget_id, f"a removed budget (#{a.budget_id})"),
                "Period": a.period_key,
                "Threshold": f"{a.threshold_pct}%",
                "Spent then": a.spent,
                "When": when(a.created_at),
                "Webhook": "no webhook" if a.webhook_status == "none" else a.webhook_status,
                "Attempts": a.webhook_attempts,
            }
            for a in alert_rows
        ],
        hide_index=True,
        width="stretch",
        key="alerts_table",
    )
    if not alert_rows:
        st.caption("No alerts yet.")

with policy_tab:
    st.dataframe(
        [
            {
                "Team": teams[t],
                "Allowed models": ", ".join(p.allowed_models) or "all priced models",
                "Lower max_tokens when tight": "yes" if p.lower_max_tokens else "no",
            }
            for t, p in policies.items()
        ],
        hide_index=True,
        width="stretch",
        key="policies_table",
    )
    if (can_edit or can_models) and teams:
        # Outside the form, so that picking a team fills the form with that team's policy:
        # saving one part must not overwrite the other with an empty default.
        team = st.selectbox("Team", list(teams), format_func=teams.get, key="policy_team")
        if st.session_state.get("policy_loaded_for") != team:
            st.session_state["policy_models"] = list(policies[team].allowed_models)
            st.session_state["policy_lower"] = policies[team].lower_max_tokens
            st.session_state["policy_loaded_for"] = team
        with st.form("policy_form"):
            # Each person sees what their role may change: allow-lists are the admins', the
            # max_tokens choice finance's too.
            choices = sorted(set(models) | set(policies[team].allowed_models))  # aliases too
            allowed = (
                st.multiselect("Allowed models (none selected: all priced models)", choices, key="policy_models")
                if can_models
                else None
            )
            lower = (
                st.checkbox(
                    "Lower max_tokens to what the budget can pay for when the worst case does not fit",
                    key="policy_lower",
                )
                if can_edit
                else None
            )
            if st.form_submit_button("Save policy", type="primary"):
                with db.session_scope(write=True) as session, layout.shows_errors("Team policy saved"):
                    config.set_team_policy(
                        session=session, actor=actor, team_id=team, allowed_models=allowed, lower_max_tokens=lower
                    )
        if not can_models:
            st.caption("Admins set the allowed models.")
    if actor.can(Permission.TEAM_MANAGE) and teams:
        gateway_team = st.session_state.get("policy_team", next(iter(teams)))
        with db.session_scope() as session:
            stored = gateway_policies.stored_policy_dict(session, gateway_team)
        current = {**gateway_policies.DEFAULT_SETTINGS, **stored}
        with st.form("gateway_policy_form"):
            st.markdown(f"**Moderation and response cache of {literal(teams[gateway_team])}**")
            mod_action = st.selectbox(
                "Moderation",
                ["block", "hold", "off"],
                index=["block", "hold", "off"].index(current.get("moderation", "block")),
                key="gw_moderation",
                help="block: refuse flagged requests; hold: a governance lead reviews them",
            )
            provider = st.selectbox(
                "Moderation source",
                list(moderation.PROVIDERS),
                index=list(moderation.PROVIDERS).index(current["moderation_provider"]),
                format_func=moderation.PROVIDER_LABELS.get,
                key="gw_provider",
            )
            cache_mode = st.selectbox(
                "Response cache",
                list(gateway_policies.CACHE_MODES),
                index=list(gateway_policies.CACHE_MODES).index(current["cache"]),
                format_func=CACHE_LABELS.get,
                key="gw_cache",
            )
            if st.form_submit_button("Save moderation and cache", type="primary"):
                with db.session_scope(write=True) as session, layout.shows_errors("Moderation and cache saved"):
                    gateway_policies.set_team_policy(
                        session=session,
                        actor=actor,
                        team_id=gateway_team,
                        pii_action=stored.get("pii_action", "redact"),
                        moderation=mod_action,
                        cache=cache_mode,
                        moderation_provider=provider,
                    )
        if current.get("moderation") == "off":
            st.warning(literal(f"Moderation is off for {teams[gateway_team]}: its calls reach the model unchecked."))
        elif current["moderation_provider"] == "local":
            st.info("The local check matches explicit phrasings from a short list; it is not a classifier.")
        rate_limits.edit_form(actor, gateway_team, teams[gateway_team])

with prices_tab:
    st.dataframe(
        [
            {
                "Model": p.model,
                "From": when(p.effective_from),
                "Input / 1M tokens": text_or_missing(p.input),
                "Cached input / 1M tokens": text_or_missing(p.cached_input),
                "Output / 1M tokens": text_or_missing(p.output),
                "Source": text_or_missing(p.source),
                "Origin": text_or_missing(p.origin),
            }
            for p in price_rows
        ],
        hide_index=True,
        width="stretch",
        key="prices_table",
    )
    if not can_price:
        st.caption("Read-only: admins add price overrides.")
    else:
        with st.form("price_form"):
            st.markdown("**Add a price override** (USD per 1M tokens; applies from its date on)")
            model = st.text_input("Model", key="price_model")
            effective = st.date_input("Effective from (00:00 UTC)", key="price_from")
            input_price = st.text_input("Input", key="price_input")
            cached_price = st.text_input("Cached input (empty: same as input)", key="price_cached")
            output_price = st.text_input("Output (empty: no billable output)", key="price_output")
            source = st.text_input("Source", key="price_source")
            if st.form_submit_button("Add override", type="primary"):
                with db.session_scope(write=True) as session, layout.shows_errors("Price override added"):
                    prices.add_override(
                        session=session,
                        actor=actor,
                        model=model,
                        effective_from=effective.isoformat(),
                        input=input_price,
                        cached_input=cached_price or None,
                        output=output_price or None,
                        source=source,
                    )
        future = {p.override_id: f"{p.model} from {p.effective_from:%Y-%m-%d}" for p in price_rows if p.override_id}
        if future:
            pick = st.selectbox(
                "Override to remove (only before it takes effect)",
                list(future),
                format_func=future.get,
                key="price_delete_pick",
            )
            if st.button("Remove override", key="price_delete"):
                with db.session_scope(write=True) as session, layout.shows_errors("Price override removed"):
                    prices.delete_override(session=session, actor=actor, override_id=pick)
