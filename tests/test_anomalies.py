"""Anomaly detectors on crafted series: each fires, stays quiet below its minimum, and
opens one alert per incident, however often detection runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from core import clock, db
from core.anomalies import alerts, run
from core.anomalies.tuning import set_sensitivity
from core.errors import PermissionDenied
from core.permissions import Role
from tests.anomaly_support import HOUR, NOW, TARGET, add_key, at_now, calls, steady, team_id, usage


@pytest.fixture
def support(session, directory):
    return team_id(session, "Support")


@pytest.fixture
def app_kb(session, support):
    return add_key(session, support, "app-kb")


def _detect():
    return run.detect(actor=run.SYSTEM)


def _open(session, detector=None):
    session.rollback()  # a fresh snapshot: detection wrote through its own connection
    views = alerts.list_alerts(session, actor=run.SYSTEM, states=("open", "acknowledged", "resolved"))
    return [v for v in views if detector is None or v.detector == detector]


def test_a_spend_surge_fires_once_with_its_sentence(session, support, app_kb):
    usage(
        session,
        [*steady(support, app_kb), {"hour": TARGET, "team_id": support, "key_id": app_kb, "cost_micro": 41_000_000}],
    )
    at_now()
    result = _detect()
    assert result.hours[-1] == TARGET and not result.busy
    found = [a for a in _open(session, "spend_surge") if a.series == f"key:{app_kb}"]
    assert len(found) == 1
    sentence = found[0].sentence
    assert sentence.startswith("Key `app-kb` (Support) spent $41.00 in the hour to 03:00 UTC on Tue 24 Nov")
    assert "its usual for a Tuesday 03:00 is $0." in sentence
    # The team's series surges with it; a second run over the same hours opens nothing more.
    assert any(a.series == f"team:{support}" for a in _open(session, "spend_surge"))
    before = len(_open(session))
    clock.set_clock(lambda: NOW)
    assert _detect().hours == []
    assert len(_open(session)) == before


def test_a_surge_below_the_minimum_amount_does_not_fire(session, support, app_kb):
    # Four times the usual $0.50, but only $1.50 more: below the $2.00 minimum.
    usage(
        session,
        [*steady(support, app_kb), {"hour": TARGET, "team_id": support, "key_id": app_kb, "cost_micro": 2_000_000}],
    )
    at_now()
    _detect()
    assert _open(session, "spend_surge") == []


def test_normal_traffic_does_not_fire(session, support, app_kb):
    usage(session, steady(support, app_kb, until=TARGET + HOUR))
    at_now()
    _detect()
    assert _open(session) == []


def test_an_incident_over_three_hours_is_one_alert(session, support, app_kb):
    spike = [
        {"hour": TARGET + i * HOUR, "team_id": support, "key_id": app_kb, "cost_micro": 30_000_000} for i in range(3)
    ]
    usage(session, [*steady(support, app_kb), *spike])
    for i in range(3):  # an hourly cron
        clock.set_clock(lambda i=i: NOW + i * HOUR)
        _detect()
    found = [a for a in _open(session, "spend_surge") if a.series == f"key:{app_kb}"]
    assert len(found) == 1
    assert found[0].hours == 3 and found[0].last_hour == TARGET + 2 * HOUR


def test_a_token_surge_fires(session, support, app_kb):
    usage(
        session,
        [
            *steady(support, app_kb, output_tokens=2_000),
            {"hour": TARGET, "team_id": support, "key_id": app_kb, "cost_micro": 500_000, "output_tokens": 900_000},
        ],
    )
    at_now()
    _detect()
    found = [a for a in _open(session, "token_surge") if a.series == f"key:{app_kb}"]
    assert len(found) == 1 and "used 901,000 tokens" in found[0].sentence


def test_an_error_rate_jump_fires_for_team_and_key(session, support, app_kb):
    week = [
        {"hour": TARGET - (i + 1) * HOUR, "team_id": support, "key_id": app_kb, "calls": 100, "ok": 99, "errors": 1}
        for i in range(168)
    ]
    calls(
        session, [*week, {"hour": TARGET, "team_id": support, "key_id": app_kb, "calls": 100, "ok": 70, "errors": 30}]
    )
    at_now()
    _detect()
    found = _open(session, "error_rate")
    assert {a.series for a in found} == {f"team:{support}", f"key:{app_kb}"}
    assert "30 of 100 calls failed upstream" in found[0].sentence and "1.0%" in found[0].sentence


def test_a_few_errors_stay_below_the_minimum(session, support, app_kb):
    week = [
        {"hour": TARGET - (i + 1) * HOUR, "team_id": support, "key_id": app_kb, "calls": 10, "ok": 10}
        for i in range(168)
    ]
    calls(session, [*week, {"hour": TARGET, "team_id": support, "key_id": app_kb, "calls": 10, "ok": 5, "errors": 5}])
    at_now()
    _detect()
    assert _open(session, "error_rate") == []


def test_a_key_calling_a_new_model_and_at_a_new_hour(session, support, app_kb):
    # Used only 09:00-17:00 for four weeks, with gpt-4o-mini.
    rows = [r for r in steady(support, app_kb, weeks=4) if 9 <= r["hour"].hour < 17]
    rows.append(
        {"hour": TARGET, "team_id": support, "key_id": app_kb, "model": "gpt-4o", "calls": 40, "cost_micro": 400_000}
    )
    usage(session, rows)
    at_now()
    _detect()
    new_model = _open(session, "new_model")
    assert len(new_model) == 1
    assert new_model[0].sentence.startswith("Key `app-kb` (Support) called `gpt-4o` 40 times")
    assert "`gpt-4o-mini`" in new_model[0].sentence
    odd = _open(session, "odd_hour")
    assert len(odd) == 1 and "never used around a Tuesday 03:00" in odd[0].sentence


def test_answer_drift_names_the_change(session, support):
    old = [
        {
            "hour": TARGET - (i + 2) * HOUR,
            "team_id": support,
            "prompt_name": "faq",
            "prompt_version": "3",
            "calls": 30,
            "ok": 30,
            "output_tokens": 30 * 120,
            "cost_micro": 30 * 100,
        }
        for i in range(48)
    ]
    new = {
        "hour": TARGET,
        "team_id": support,
        "prompt_name": "faq",
        "prompt_version": "4",
        "calls": 40,
        "ok": 40,
        "output_tokens": 40 * 300,
        "cost_micro": 40 * 100,
    }
    calls(session, [*old, new])
    at_now()
    _detect()
    drift = _open(session, "answer_drift")
    assert len(drift) == 1
    assert drift[0].sentence.startswith("Prompt `faq`: output tokens per answer rose from 120 tokens to 300 tokens")
    assert "version 3 → 4" in drift[0].sentence
    assert _open(session, "cost_drift") == []  # cost per answer did not move


def test_sensitivity_per_team_quiets_a_detector(session, directory, support, app_kb):
    usage(
        session,
        [*steady(support, app_kb), {"hour": TARGET, "team_id": support, "key_id": app_kb, "cost_micro": 4_000_000}],
    )
    with pytest.raises(PermissionDenied):
        set_sensitivity(
            session, actor=directory.with_role(Role.FINANCE), detector="spend_surge", team_id=support, factor=3
        )
    set_sensitivity(session, actor=directory.admin, detector="spend_surge", team_id=support, factor=3)
    at_now()
    _detect()
    assert _open(session, "spend_surge") == []
    assert (
        session.execute(text("SELECT count(*) FROM audit_event WHERE action = 'anomaly.sensitivity.set'")).scalar() == 1
    )


def test_a_second_runner_waits_for_the_lease(session, support, app_kb):
    from core.anomalies.run import _acquire, _release

    at_now()
    engine = db.get_engine()
    assert _acquire(engine, "other-server")
    assert _detect().busy
    _release(engine, "other-server")
    assert not _detect().busy


def test_detect_if_due_is_a_cheap_no_op_until_an_hour_closes(session, support, app_kb):
    at_now()
    assert run.detect_if_due() is not None
    assert run.detect_if_due() is None
    clock.set_clock(lambda: NOW + HOUR)
    assert run.detect_if_due().hours == [TARGET + HOUR]
    assert session.execute(select(func.count()).select_from(text("anomaly_run"))).scalar() == 1


def test_a_run_catches_up_at_most_two_weeks(session):
    at_now()
    first = _detect()
    assert len(first.hours) == run.FIRST_RUN_HOURS
    clock.set_clock(lambda: NOW + timedelta(days=30))
    assert len(_detect().hours) == run.MAX_HOURS


def test_two_runners_at_once_open_each_alert_once(session, support, app_kb):
    import threading

    usage(
        session,
        [*steady(support, app_kb), {"hour": TARGET, "team_id": support, "key_id": app_kb, "cost_micro": 41_000_000}],
    )
    at_now()
    results = []
    runners = [threading.Thread(target=lambda: results.append(_detect())) for _ in range(3)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert sum(not r.busy for r in results) >= 1
    assert len([a for a in _open(session, "spend_surge") if a.series == f"key:{app_kb}"]) == 1
