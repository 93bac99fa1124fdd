"""Gateway observability: counts, rates and latency percentiles per team, model and prompt,
per day or hour, aggregated by the database (core.gateway.observability) and on the page."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from core import clock
from core.budgets import rollups
from core.errors import PermissionDenied, ValidationError
from core.gateway.observability import MetricsQuery, filter_options, gateway_metrics
from core.models.gateway import GatewayCall
from core.permissions import Role
from tests.conftest import APP
from tests.gateway_support import team_id

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fixed_now(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)


def add_call(
    session,
    *,
    team,
    at=NOW,
    model="gpt-4o-mini",
    prompt=None,
    status="ok",
    http_status=200,
    latency_ms=100.0,
    cache_hit=False,
    cost_micro=None,
):
    """A call-log row and its roll-up, as the gateway's settle writes them."""
    call = GatewayCall(
        request_id=f"req_{uuid.uuid4().hex[:24]}",
        created_at=at,
        team_id=team,
        actor="key:1",
        endpoint="prompt" if prompt else "chat",
        model=model,
        prompt_name=prompt,
        status=status,
        http_status=http_status,
        cache_hit=cache_hit,
        latency_ms=latency_ms,
        cost_micro=(10 if status == "ok" else 0) if cost_micro is None else cost_micro,
    )
    session.add(call)
    session.flush()
    rollups.add_call_rows(session.connection(), [call.model_dump()])


def exact_percentile(values, share):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def metrics(session, directory, **query):
    return gateway_metrics(session, actor=directory.with_role(Role.AUDITOR), query=MetricsQuery(**query))


def test_percentiles_come_within_two_and_a_half_percent_of_the_exact_ones(session, directory):
    support = team_id(session)
    rng = random.Random(7)
    latencies = [rng.lognormvariate(math.log(400), 0.8) for _ in range(2000)] + [0.004, 0.5, 90_000.0]
    for ms in latencies:
        add_call(session, team=support, latency_ms=ms)
    session.commit()

    result = metrics(session, directory, by=("team",), granularity="total")
    (bucket,) = result.buckets
    for share, reported in ((0.5, bucket.p50_ms), (0.95, bucket.p95_ms), (0.5, result.p50_ms)):
        exact = exact_percentile(latencies, share)
        assert abs(reported - exact) / exact <= 0.025, (share, reported, exact)


def test_counts_and_rates_per_team_and_day(session, directory):
    support, legal = team_id(session), team_id(session, "Legal")
    yesterday = NOW - timedelta(days=1)
    add_call(session, team=support, at=yesterday, latency_ms=50)
    add_call(session, team=support, at=yesterday, cache_hit=True, latency_ms=1, cost_micro=0)
    add_call(session, team=support, at=yesterday, status="upstream_error", http_status=502, latency_ms=9000)
    add_call(session, team=support, at=yesterday, status="budget_exceeded", http_status=429, latency_ms=2)
    add_call(session, team=support, status="blocked", http_status=400)
    add_call(session, team=legal, status="held", http_status=202, cost_micro=25)
    add_call(session, team=support, at=NOW - timedelta(days=30))  # outside the 14 days
    session.commit()

    result = metrics(session, directory, by=("team",))
    by_key = {(b.period, b.team_id): b for b in result.buckets}
    assert set(by_key) == {("2026-11-19", support), ("2026-11-20", support), ("2026-11-20", legal)}
    day = by_key[("2026-11-19", support)]
    assert (day.calls, day.ok, day.errors, day.rejected_429, day.cache_hits) == (4, 2, 1, 1, 1)
    assert (day.error_rate, day.rate_429, day.cache_hit_rate) == (0.25, 0.25, 0.25)
    # Only answered calls count for latency: the 9 s upstream failure does not make p95.
    assert day.p95_ms < 60
    assert by_key[("2026-11-20", support)].blocked == 1 and by_key[("2026-11-20", support)].p50_ms is None
    assert by_key[("2026-11-20", legal)].held == 1
    assert (result.calls, result.blocked, result.held, result.cost_micro) == (6, 1, 1, 35)


def test_per_prompt_and_model_with_filters(session, directory):
    support = team_id(session)
    for _ in range(3):
        add_call(session, team=support, prompt="support-answer", latency_ms=200)
    add_call(session, team=support, prompt="ticket-triage", model="gpt-4o", latency_ms=900)
    add_call(session, team=support, latency_ms=20)  # a plain chat call: no prompt
    session.commit()

    result = metrics(session, directory, by=("prompt", "model"), granularity="total")
    rows = {(b.prompt, b.model): b.calls for b in result.buckets}
    assert rows == {("support-answer", "gpt-4o-mini"): 3, ("ticket-triage", "gpt-4o"): 1, (None, "gpt-4o-mini"): 1}
    assert filter_options(session, actor=directory.with_role(Role.AUDITOR), days=14) == (
        ["gpt-4o", "gpt-4o-mini"],
        ["support-answer", "ticket-triage"],
    )

    only = metrics(session, directory, by=("prompt",), granularity="total", prompts=("ticket-triage",))
    assert [(b.prompt, b.calls) for b in only.buckets] == [("ticket-triage", 1)]
    assert abs(only.p50_ms - 900) / 900 <= 0.025
    assert metrics(session, directory, models=("gpt-4o",), team_ids=(team_id(session, "Legal"),)).calls == 0


def test_whole_period_totals_merge_the_days(session, directory):
    support, legal = team_id(session), team_id(session, "Legal")
    for day, latencies in ((1, [10, 20, 30]), (2, [1000, 2000])):
        for ms in latencies:
            add_call(session, team=support, at=NOW - timedelta(days=day), latency_ms=ms)
    add_call(session, team=legal, latency_ms=5)
    session.commit()

    result = metrics(session, directory, by=("team",))
    assert [(b.team_id, b.calls) for b in result.buckets if b.team_id == support] == [(support, 2), (support, 3)]
    totals = {b.team_id: b for b in result.totals}
    assert totals[support].calls == 5 and totals[support].period == "total"
    # The median of all five calls (30 ms), not something made of the days' medians (20 and 1,500 ms).
    assert abs(totals[support].p50_ms - 30) / 30 <= 0.025
    assert totals[legal].calls == 1 and result.calls == 6


def test_hourly_periods_are_utc_hours(session, directory):
    support = team_id(session)
    add_call(session, team=support, at=datetime(2026, 11, 20, 9, 59, tzinfo=UTC))
    add_call(session, team=support, at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC))
    add_call(session, team=support, at=datetime(2026, 11, 20, 10, 45, tzinfo=UTC))
    session.commit()
    result = metrics(session, directory, by=(), granularity="hour", days=1)
    assert [(b.period, b.calls) for b in result.buckets] == [("2026-11-20 09", 1), ("2026-11-20 10", 2)]


def test_no_calls_gives_no_buckets(session, directory):
    result = metrics(session, directory, by=(), granularity="total")
    assert (result.buckets, result.calls, result.p50_ms) == ([], 0, None)


@pytest.mark.parametrize(
    "query, message",
    [
        ({"days": 0}, "days must be between 1 and 366"),
        ({"days": 10_000}, "days must be between 1 and 366"),
        ({"by": ("person",)}, "Cannot group by person"),
        ({"granularity": "minute"}, "Unknown granularity 'minute'"),
    ],
)
def test_bad_queries_are_refused_with_what_is_allowed(session, directory, query, message):
    with pytest.raises(ValidationError, match=message):
        metrics(session, directory, **query)


def test_finance_may_not_read_gateway_health(session, directory):
    with pytest.raises(PermissionDenied, match="observability.read"):
        gateway_metrics(session, actor=directory.with_role(Role.FINANCE), query=MetricsQuery())


def test_the_page_shows_totals_and_breaks_down_by_prompt(session, directory):
    support = team_id(session)
    for _ in range(4):
        add_call(session, team=support, prompt="support-answer", latency_ms=120, at=clock.now() - timedelta(hours=2))
    add_call(session, team=support, status="upstream_error", http_status=502, at=clock.now() - timedelta(hours=1))
    session.commit()

    from core.identity import people as identity

    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_person_id"] = identity.person_by_email(session, "daniel.kim@example.com").id
    at.run()
    at.switch_page("pages/observability.py").run()
    assert not at.exception, at.exception
    shown = {m.label: m.value for m in at.metric}
    assert shown["Calls"] == "5" and shown["Error rate (5xx)"] == "20.0%"
    assert 117 <= float(shown["p50 latency (ms)"]) <= 123

    at.multiselect(key="obs_by").set_value(["prompt"]).run()
    (table,) = [frame.value for frame in at.dataframe]
    assert dict(zip(table["group"], table["calls"])) == {"support-answer": 4, "(no catalog prompt)": 1}


def test_a_90_day_view_reads_edge_hours_and_whole_days_and_equals_the_call_log(session, directory):
    """The window starts at 15:30 ninety days ago: its first half hour comes from the call log,
    the hours to midnight from the hourly roll-ups, the days after from the daily ones. Every
    view equals what the call log says, call for call, with calls on each seam."""
    support, legal = team_id(session), team_id(session, "Legal")
    start = NOW - timedelta(days=90)
    seams = [start - timedelta(minutes=1), start, start + timedelta(minutes=29), start + timedelta(minutes=30)]
    midnight = (start + timedelta(days=1)).replace(hour=0, minute=0)
    seams += [midnight - timedelta(microseconds=1), midnight, midnight + timedelta(hours=1), NOW]
    rng = random.Random(3)
    instants = seams + [start + timedelta(seconds=rng.uniform(0, 90 * 86400)) for _ in range(300)]
    calls = []
    for index, at in enumerate(instants):
        outcome = [("ok", 200)] * 6 + [("upstream_error", 502), ("budget_exceeded", 429), ("blocked", 400)]
        status, http_status = outcome[index % len(outcome)]
        call = {
            "team": (support, legal)[index % 2],
            "at": at,
            "model": ("gpt-4o", "gpt-4o-mini", "gpt-4.1")[index % 3],
            "prompt": (None, "support-answer", "ticket-triage")[(index // 3) % 3],
            "status": status,
            "http_status": http_status,
            "latency_ms": rng.lognormvariate(math.log(300), 0.7),
            "cache_hit": index % 7 == 0,
        }
        add_call(session, **call)
        calls.append(call)
    session.commit()
    inside = [c for c in calls if c["at"] >= start]
    for by in [("team",), ("team", "model"), ("prompt",), ()]:
        for granularity in ("day", "hour", "total"):
            result = metrics(session, directory, days=90, by=by, granularity=granularity)
            expected: dict = {}
            for c in inside:
                period = {"day": f"{c['at']:%Y-%m-%d}", "hour": f"{c['at']:%Y-%m-%d %H}", "total": "total"}
                key = (period[granularity], *(c[d] for d in by))
                sums = expected.setdefault(key, [0, 0, 0, 0, 0, 0])
                for i, flag in enumerate(
                    (True, c["status"] == "ok", c["http_status"] >= 500, c["http_status"] == 429, c["cache_hit"])
                ):
                    sums[i] += int(flag)
                sums[5] += 10 if c["status"] == "ok" else 0
            shown = {
                (b.period, *({"team": b.team_id, "model": b.model, "prompt": b.prompt}[d] for d in by)): [
                    b.calls,
                    b.ok,
                    b.errors,
                    b.rejected_429,
                    b.cache_hits,
                    b.cost_micro,
                ]
                for b in result.buckets
            }
            assert shown == expected, (by, granularity)
            assert result.calls == len(inside)
            answered = [c["latency_ms"] for c in inside if c["status"] == "ok"]
            assert abs(result.p95_ms - exact_percentile(answered, 0.95)) / exact_percentile(answered, 0.95) <= 0.025
    assert filter_options(session, actor=directory.with_role(Role.AUDITOR), days=90) == (
        ["gpt-4.1", "gpt-4o", "gpt-4o-mini"],
        ["support-answer", "ticket-triage"],
    )


def test_the_charts_read_well_small_rates_whole_calls_and_named_percentiles(session, directory):
    """A few calls and a rate under one percent: the rate axis has decimals (not 0%, 0%, 1%),
    the count axes step by whole calls, the latency legend names the group and percentile."""
    import json

    support = team_id(session)
    for index in range(300):
        failed = index == 0
        add_call(
            session,
            team=support,
            at=clock.now() - timedelta(days=index % 3, minutes=index),
            status="upstream_error" if failed else "ok",
            http_status=502 if failed else 200,
        )
    add_call(session, team=support, status="blocked", http_status=400, at=clock.now() - timedelta(days=1))
    session.commit()
    from core.identity import people as identity

    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_person_id"] = identity.person_by_email(session, "daniel.kim@example.com").id
    at.run()
    at.switch_page("pages/observability.py").run()
    assert not at.exception, at.exception
    charts = {}
    for element in at.get("plotly_chart"):
        figure = json.loads(element.proto.spec)
        charts[figure["layout"]["title"]["text"]] = figure
    rates = charts["Error, 429 and cache-hit rates"]["layout"]["yaxis"]
    assert rates["tickformat"] in (".1%", ".2%")
    guarded = charts["Blocked and held requests"]["layout"]["yaxis"]
    assert (guarded["dtick"], guarded["tickformat"]) == (1, ",d")
    assert charts["Calls per day"]["layout"]["yaxis"]["tickformat"] == ",d"
    calls = charts["Calls per day"]
    assert calls["layout"]["xaxis"]["type"] == "date"
    assert sorted({x for trace in calls["data"] for x in trace["x"]}) == ["2026-11-18", "2026-11-19", "2026-11-20"]
    names = {trace["name"] for trace in charts["Latency p50 and p95 (ms)"]["data"]}
    assert names == {"Support (p50)", "Support (p95)"}
    assert any("Spend shows the ledger" in caption.value for caption in at.caption)


def _merged_by_hand(buckets, hours: int) -> dict:
    """Per-hour buckets summed per period of `hours` hours (named by its first hour)."""
    merged: dict = {}
    for b in buckets:
        period = f"{b.period[:11]}{int(b.period[11:13]) // hours * hours:02d}"
        sums = merged.setdefault((period, b.team_id), [0, 0, 0, 0, 0])
        for i, value in enumerate((b.calls, b.ok, b.errors, b.rejected_429, b.cost_micro)):
            sums[i] += value
    return merged


@pytest.mark.parametrize(
    "max_points, row_budget, hours",
    [(400, None, 1), (150, None, 4), (90, None, 6), (40, None, 24), (400, 200, 6), (400, 10, 24)],
)
def test_a_long_per_hour_view_merges_hours_into_fewer_points_and_loses_no_call(
    session, directory, monkeypatch, max_points, row_budget, hours
):
    """Ten days per hour by team: within the points asked for, every hour is its own; past
    them, periods of a few hours (or a day) whose counts are their hours' sums and whose p95
    is the exact one of their calls, to the histogram's 2.5 %. Points of 6 hours come from
    the six-hour roll-ups; a view that would read more roll-up rows than its budget merges
    hours too (200 rows: the hourly ones are too many, the six-hour ones fit)."""
    from core.gateway import observability

    support, legal = team_id(session), team_id(session, "Legal")
    rng = random.Random(5)
    calls = []
    for index in range(500):
        at = NOW - timedelta(seconds=rng.uniform(0, 10 * 86400))
        call = {"team": (support, legal)[index % 2], "at": at, "latency_ms": rng.lognormvariate(5, 0.6)}
        call |= {"status": ("ok", "upstream_error")[index % 7 == 0], "http_status": (200, 502)[index % 7 == 0]}
        add_call(session, **call)
        calls.append(call)
    session.commit()
    every_hour = metrics(session, directory, days=10, by=("team",), granularity="hour")
    assert len(every_hour.buckets) > 150
    if row_budget is not None:
        monkeypatch.setattr(observability, "ROW_BUDGET", row_budget)
    result = metrics(session, directory, days=10, by=("team",), granularity="hour", max_points=max_points)
    assert result.hours_per_point == hours and len(result.buckets) <= max_points
    shown = {(b.period, b.team_id): [b.calls, b.ok, b.errors, b.rejected_429, b.cost_micro] for b in result.buckets}
    assert shown == _merged_by_hand(every_hour.buckets, hours)
    assert (result.calls, result.p95_ms) == (every_hour.calls, every_hour.p95_ms) == (500, result.p95_ms)
    busiest = max(result.buckets, key=lambda b: b.ok)
    first = datetime.strptime(busiest.period, "%Y-%m-%d %H").replace(tzinfo=UTC)
    inside = [
        c["latency_ms"]
        for c in calls
        if c["team"] == busiest.team_id and c["status"] == "ok" and first <= c["at"] < first + timedelta(hours=hours)
    ]
    exact = exact_percentile(inside, 0.95)
    assert busiest.ok == len(inside) and abs(busiest.p95_ms - exact) / exact <= 0.025


def test_a_bad_number_of_points_is_refused(session, directory):
    with pytest.raises(ValidationError, match="max_points must be at least 1, not 0"):
        metrics(session, directory, granularity="hour", max_points=0)


def test_the_page_says_when_its_points_merge_hours(session, directory, monkeypatch):
    """Past the points a chart carries, the page merges hours and says how many per point: 48
    hours of one team over three days is 48 points, and three days of 6 periods (4 hours)
    is the fewest hours per point sure to fit in 20."""
    import json

    from core.gateway import observability
    from core.identity import people as identity

    support = team_id(session)
    for hour in range(48):
        add_call(session, team=support, at=NOW - timedelta(hours=hour, minutes=5))
    session.commit()
    monkeypatch.setattr(observability, "CHART_POINTS", 20)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_person_id"] = identity.person_by_email(session, "daniel.kim@example.com").id
    at.run()
    at.switch_page("pages/observability.py").run()
    at.slider(key="obs_days").set_value(3).run()
    at.radio(key="obs_granularity").set_value("hour").run()
    assert not at.exception, at.exception
    assert any("Each point of the charts is 4 hours" in caption.value for caption in at.caption)
    figures = [json.loads(element.proto.spec) for element in at.get("plotly_chart")]
    calls = next(f for f in figures if f["layout"]["title"]["text"] == "Calls per 4 hours")
    assert sum(sum(trace["y"]) for trace in calls["data"]) == 48
    assert {x[11:13] for trace in calls["data"] for x in trace["x"]} <= {"00", "04", "08", "12", "16", "20"}
    assert {m.label: m.value for m in at.metric}["Calls"] == "48"
