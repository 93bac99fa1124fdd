"""Prebuilt statements run together (core/together.py): one statement on PostgreSQL, the same
rows as run one by one, and a failure of any part fails them all."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, event, exc, insert, select, update

from core import db
from core.models.gateway import GatewayCall
from core.prebuilt import Prebuilt
from core.together import run_together
from tests.test_prebuilt import _row

CALLS = GatewayCall.__table__
INSERT = Prebuilt(insert(CALLS))
SET_STATUS = Prebuilt(
    update(CALLS).where(CALLS.c.request_id == bindparam("r")).values(status=bindparam("s"), http_status=bindparam("h"))
)
READ = Prebuilt(
    select(CALLS.c.request_id, CALLS.c.status, CALLS.c.input_tokens)
    .where(CALLS.c.team_id == bindparam("t"))
    .order_by(CALLS.c.request_id)
)


def _statements(connection):
    seen: list[str] = []

    def count(_connection, _cursor, statement, *_rest):
        seen.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    return seen


def _calls(team_id: int) -> list[tuple]:
    with db.get_engine().connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(CALLS.c.request_id, CALLS.c.status, CALLS.c.http_status, CALLS.c.input_tokens)
                .where(CALLS.c.team_id == team_id)
                .order_by(CALLS.c.request_id)
            )
        ]


def test_inserts_an_update_and_a_read_go_as_one_statement_on_postgresql_and_each_takes_effect(db_url):
    with db.get_engine().begin() as connection:
        INSERT.execute(connection, _row("old", team_id=4, status="error", http_status=502))
        seen = _statements(connection)
        found = run_together(
            connection,
            [
                # Ten and more parameters per part: `$1` of the second part is not `$11` of the first.
                (INSERT, [_row(f"new-{i}", team_id=4, input_tokens=100 + i) for i in range(3)]),
                (SET_STATUS, {"r": "old", "s": "ok", "h": 200}),
                (READ, {"t": 4}),
            ],
            fetch=True,
        )
    assert len(seen) == (1 if connection.dialect.name == "postgresql" else 3)
    # The read sees the table as the statement began (one snapshot on PostgreSQL): the rows
    # inserted and updated by the parts before it are not in its answer there.
    if connection.dialect.name == "postgresql":
        assert found == [("old", "error", 12)]
    else:
        assert [tuple(r) for r in found] == [
            ("new-0", "ok", 100),
            ("new-1", "ok", 101),
            ("new-2", "ok", 102),
            ("old", "ok", 12),
        ]
    assert _calls(4) == [
        ("new-0", "ok", 200, 100),
        ("new-1", "ok", 200, 101),
        ("new-2", "ok", 200, 102),
        ("old", "ok", 200, 12),
    ]


def test_the_last_part_gives_its_row_count_and_empty_parts_are_left_out(db_url):
    with db.get_engine().begin() as connection:
        INSERT.execute(connection, [_row("a", team_id=5), _row("b", team_id=5)])
        assert run_together(connection, [(INSERT, []), (SET_STATUS, {"r": "a", "s": "held", "h": 202})]) == 1
        assert (
            run_together(connection, [(INSERT, [_row("c", team_id=5)]), (SET_STATUS, {"r": "zzz", "s": "x", "h": 1})])
            == 0
        )
        assert run_together(connection, [(INSERT, [])]) == 0
        assert run_together(connection, [(INSERT, [])], fetch=True) == []
    assert [(r[0], r[1]) for r in _calls(5)] == [("a", "held"), ("b", "ok"), ("c", "ok")]


def test_a_failing_part_fails_the_others_with_sqlalchemys_error_and_the_rollback_leaves_nothing(db_url):
    with db.get_engine().begin() as connection:
        INSERT.execute(connection, _row("taken", team_id=6))
    with pytest.raises(exc.IntegrityError), db.get_engine().begin() as connection:
        run_together(
            connection,
            [
                (SET_STATUS, {"r": "taken", "s": "changed", "h": 500}),
                (INSERT, [_row("fresh", team_id=6), _row("taken", team_id=6)]),
            ],
        )
    assert [(r[0], r[1]) for r in _calls(6)] == [("taken", "ok")]


def test_a_part_with_its_own_with_runs_alone_and_still_in_order(db_url):
    picked = select(CALLS.c.request_id, CALLS.c.status).where(CALLS.c.request_id == bindparam("r")).cte("picked")
    with_own_with = Prebuilt(select(picked.c.request_id, picked.c.status))
    with db.get_engine().begin() as connection:
        INSERT.execute(connection, _row("w", team_id=7))
        seen = _statements(connection)
        found = run_together(
            connection, [(SET_STATUS, {"r": "w", "s": "ok2", "h": 201}), (with_own_with, {"r": "w"})], fetch=True
        )
        # Run after the update, in a statement of its own: it sees the update.
        assert [tuple(r) for r in found] == [("w", "ok2")]
        assert len(seen) == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=4))
def test_parts_together_write_what_they_write_one_by_one(db_url, batches):
    """Any number of parts of any size: the same rows as each part run alone."""
    team_alone, team_together = 20 + len(batches), 40 + len(batches)
    with db.get_engine().begin() as connection:
        for team in (team_alone, team_together):
            connection.execute(CALLS.delete().where(CALLS.c.team_id == team))
        parts_alone, parts_together = [], []
        for b, size in enumerate(batches):
            for team, parts in ((team_alone, parts_alone), (team_together, parts_together)):
                parts.append(
                    (INSERT, [_row(f"{team}-{b}-{i}", team_id=team, input_tokens=b * 10 + i) for i in range(size)])
                )
        for part in parts_alone:
            run_together(connection, [part])
        run_together(connection, parts_together)

    def shape(team):
        return [(r[0].split("-", 1)[1], *r[1:]) for r in _calls(team)]

    assert shape(team_together) == shape(team_alone)
    assert len(shape(team_together)) == sum(batches)
