"""A key or a person calling a model their team rarely uses, on crafted roll-ups: fires with
the team's own figures, not below the minimum, not for a model the team uses every day, not
twice for one incident, and not beside "a model new to the key" for the same calls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from core.anomalies import alerts, run
from core.anomalies.tuning import set_sensitivity
from tests.anomaly_support import HOUR, TARGET, add_key, at_now, steady, team_id, usage


@pytest.fixture
def support(session, directory):
    return team_id(session, "Support")


@pytest.fixture
def keys(session, support):
    """Two established keys on gpt-4o-mini; `second` tried gpt-4o a little two weeks ago."""
    main, second = add_key(session, support, "app-kb"), add_key(session, support, "triage")
    rows = [*steady(support, main), *steady(support, second)]
    tried = TARGET - timedelta(days=14, hours=5)
    rows.append({"hour": tried, "team_id": support, "key_id": second, "model": "gpt-4o", "calls": 20})
    usage(session, rows)
    return main, second


def _open(session, detector):
    session.rollback()
    views = alerts.list_alerts(session, actor=run.SYSTEM, states=("open", "acknowledged", "resolved"))
    return [v for v in views if v.detector == detector]


def _person(session):
    return session.execute(text("SELECT id FROM person ORDER BY id LIMIT 1")).scalar_one()


def test_a_key_calling_a_model_its_team_rarely_uses_fires_once(session, support, keys):
    _main, second = keys
    usage(session, [{"hour": TARGET, "team_id": support, "key_id": second, "model": "gpt-4o", "calls": 12}])
    at_now()
    run.detect(actor=run.SYSTEM)
    found = _open(session, "rare_model")
    assert [a.series for a in found] == [f"key:{second}:rare:gpt-4o"]
    assert found[0].sentence.startswith("Key `triage` (Support) called `gpt-4o` 12 times in the hour to 03:00 UTC")
    assert "team Support made 0.1% of its calls in the previous 28 days with it (20 of" in found[0].sentence
    # The key had used it within 28 days: not "new to the key".
    assert _open(session, "new_model") == []
    # The next hours it goes on: the same alert, extended.
    usage(session, [{"hour": TARGET + HOUR, "team_id": support, "key_id": second, "model": "gpt-4o", "calls": 12}])
    run.detect(actor=run.SYSTEM, now=TARGET + 2 * HOUR + HOUR / 12)
    again = _open(session, "rare_model")
    assert len(again) == 1 and again[0].hours == 2


def test_a_person_calling_a_rare_model_is_named(session, support, keys):
    person = _person(session)
    usage(session, [{"hour": TARGET, "team_id": support, "key_id": 0, "person_id": person, "model": "o1", "calls": 6}])
    at_now()
    run.detect(actor=run.SYSTEM)
    found = _open(session, "rare_model")
    name = session.execute(text("SELECT display_name FROM person WHERE id = :p"), {"p": person}).scalar_one()
    assert [a.series for a in found] == [f"person:{person}:rare:o1"]
    assert found[0].sentence.startswith(f"{name} (Support) called `o1` 6 times")


def test_below_the_minimum_or_a_common_model_fires_nothing(session, support, keys):
    _main, second = keys
    newcomer = add_key(session, support, "new-app")
    usage(
        session,
        [
            {"hour": TARGET, "team_id": support, "key_id": second, "model": "gpt-4o", "calls": 4},
            # A brand-new key on the team's everyday model: nothing rare about it.
            {"hour": TARGET, "team_id": support, "key_id": newcomer, "model": "gpt-4o-mini", "calls": 50},
        ],
    )
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session, "rare_model") == []


def test_a_lower_sensitivity_raises_the_minimum(session, directory, support, keys):
    _main, second = keys
    set_sensitivity(session, actor=directory.admin, detector="rare_model", team_id=support, factor=3)
    usage(session, [{"hour": TARGET, "team_id": support, "key_id": second, "model": "gpt-4o", "calls": 12}])
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session, "rare_model") == []  # 12 calls < 5 x 3


def test_a_model_new_to_the_key_is_said_once_not_twice(session, support, keys):
    main, _second = keys
    usage(session, [{"hour": TARGET, "team_id": support, "key_id": main, "model": "o1", "calls": 10}])
    at_now()
    run.detect(actor=run.SYSTEM)
    assert [a.series for a in _open(session, "new_model")] == [f"key:{main}:model:o1"]
    assert _open(session, "rare_model") == []


def test_a_young_team_fires_nothing(session, support):
    key = add_key(session, support, "first")
    usage(
        session,
        [
            *({"hour": TARGET - (i + 1) * HOUR, "team_id": support, "key_id": key, "calls": 10} for i in range(24)),
            {"hour": TARGET, "team_id": support, "key_id": key, "model": "gpt-4o", "calls": 10},
        ],
    )
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session, "rare_model") == []  # 240 calls: too few to know the team's mix


def test_a_key_in_the_habit_of_a_model_is_not_news(session, support, keys):
    _main, second = keys
    usage(
        session,
        [
            {"hour": TARGET - w * timedelta(days=7), "team_id": support, "key_id": second, "model": "o1", "calls": 5}
            for w in (1, 2, 3)
        ]
        + [{"hour": TARGET, "team_id": support, "key_id": second, "model": "o1", "calls": 12}],
    )
    at_now()
    run.detect(actor=run.SYSTEM)
    assert _open(session, "rare_model") == []
