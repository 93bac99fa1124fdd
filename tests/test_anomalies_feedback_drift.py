"""Answer drift in feedback: a prompt's mean feedback score shifting after a version or
model change, on crafted calls and ratings: fires naming the change, not below the minimum
number of ratings, not for a small shift, and not twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from core import db
from core.anomalies import alerts, run
from core.db import table_of
from core.models.experiments import RequestFeedback
from core.models.gateway import GatewayCall
from tests.anomaly_support import HOUR, NOW, TARGET, at_now, team_id


@pytest.fixture
def support(session, directory):
    return team_id(session, "Support")


def rated(team: int, *, version: str, model: str, start, count: int, score: float, tag: str) -> None:
    """`count` calls of prompt `faq`, one every 10 minutes from `start`, each rated `score`."""
    calls, ratings = [], []
    for i in range(count):
        request = f"req_{tag}_{i}"
        when = start + timedelta(minutes=10 * i) if count * 10 < 60 else start + i * (HOUR / count)
        calls.append(
            dict(
                request_id=request,
                created_at=when,
                team_id=team,
                actor="key:1",
                endpoint="prompt",
                model=model,
                prompt_name="faq",
                prompt_version=version,
                status="ok",
            )
        )
        ratings.append(dict(request_id=request, team_id=team, score=score, created_at=when))
    with db.write_session() as s:
        s.execute(insert(table_of(GatewayCall)), calls)
        s.execute(insert(table_of(RequestFeedback)), ratings)
        s.commit()


def _open(session):
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM, states=("open", "acknowledged", "resolved"))
    return [v for v in views if v.detector == "feedback_drift"]


def _before(support):
    rated(support, version="3", model="gpt-4o-mini", start=TARGET - timedelta(days=3), count=60, score=0.9, tag="old")


def test_a_score_falling_after_a_new_version_fires_naming_it(session, support):
    _before(support)
    rated(support, version="4", model="gpt-4o-mini", start=TARGET, count=30, score=0.5, tag="new")
    at_now()
    run.detect(actor=run.SYSTEM)
    found = _open(session)
    assert [a.series for a in found] == ["prompt:faq:4:gpt-4o-mini"]
    assert found[0].sentence.startswith(
        "Prompt `faq`: the mean feedback score fell from 0.90 to 0.50 after the change of version 3 → 4, "
        "over 30 rated answers"
    )
    # More ratings of the same version the next hour: the same alert, not a second.
    rated(support, version="4", model="gpt-4o-mini", start=TARGET + HOUR, count=30, score=0.4, tag="more")
    run.detect(actor=run.SYSTEM, now=NOW + HOUR)
    assert len(_open(session)) == 1


def test_a_model_change_is_named(session, support):
    _before(support)
    rated(support, version="3", model="gpt-4.1", start=TARGET, count=25, score=0.55, tag="new")
    at_now()
    run.detect(actor=run.SYSTEM)
    found = _open(session)
    assert len(found) == 1 and "model `gpt-4o-mini` → `gpt-4.1`" in found[0].sentence


def test_too_few_ratings_or_a_small_shift_fire_nothing(session, support):
    _before(support)
    rated(support, version="4", model="gpt-4o-mini", start=TARGET, count=19, score=0.2, tag="few")
    rated(support, version="5", model="gpt-4o-mini", start=TARGET, count=40, score=0.8, tag="close")
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session) == []
