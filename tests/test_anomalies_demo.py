"""The demo's injected incidents are found by the detectors and explained in words."""

from __future__ import annotations

from core import demo
from core.anomalies import alerts, run


def test_the_demo_opens_true_alerts_on_first_start(session):
    demo.seed(session)
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM)
    spend = [v for v in views if v.detector == "spend_surge" and v.series.startswith("team:")]
    assert {v.team for v in spend} == {"Marketing", "Legal"}
    legal = next(v for v in spend if v.team == "Legal")
    assert legal.hours == 2  # one incident over two hours is one alert
    assert all("Team " in v.sentence and "its usual for a" in v.sentence for v in spend)
    # Nothing else in the demo's ordinary traffic pages anyone.
    assert {v.team for v in views} <= {"Marketing", "Legal"}
