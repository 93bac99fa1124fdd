"""The typed helpers of core.db: a row's saved id, and a model's Core table."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.db import changed_rows, saved_id, table_of
from core.models.identity import Team
from core.models.keys import ApiKey


def test_a_saved_row_gives_its_id(session):
    team = Team(name="Research", name_key="research")
    session.add(team)
    session.flush()
    assert saved_id(team) == team.id
    assert isinstance(saved_id(team), int)


def test_reading_the_id_of_a_row_not_yet_flushed_says_so():
    with pytest.raises(RuntimeError, match="Team has no id yet: flush the session"):
        saved_id(Team(name="Research"))


def test_a_table_model_gives_its_core_table():
    table = table_of(ApiKey)
    assert table.name == "api_key"
    assert "key_hash" in table.c


def test_an_update_counts_the_rows_it_changed(session):
    for name in ("Research", "Legal"):
        session.add(Team(name=name, name_key=name.lower()))
    session.flush()
    result = session.execute(text("UPDATE team SET description = 'x' WHERE name_key IN ('research', 'legal')"))
    assert changed_rows(result) == 2


def test_a_result_that_counts_nothing_is_refused_by_name(session):
    buffered = session.execute(text("SELECT 1")).freeze()()
    with pytest.raises(TypeError, match="does not count changed rows"):
        changed_rows(buffered)
