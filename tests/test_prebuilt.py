"""Prebuilt statements (core/prebuilt.py) behave as Connection.execute does, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, exc, insert, literal_column, select, update

from core import db
from core.models.gateway import GatewayCall
from core.prebuilt import Prebuilt

CALLS = GatewayCall.__table__
WHEN = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _row(request_id: str, **changes) -> dict:
    row = {
        "request_id": request_id,
        "created_at": WHEN,
        "team_id": None,
        "key_id": 7,
        "actor": "key:7",
        "endpoint": "chat",
        "model": "gpt-4o-mini",
        "prompt_name": None,
        "prompt_version": None,
        "status": "ok",
        "http_status": 200,
        "rule": None,
        "stream": False,
        "cache_hit": True,
        "simulated": True,
        "attempts": 1,
        "input_tokens": 12,
        "output_tokens": 30,
        "usage_estimated": False,
        "cost_micro": 27,
        "latency_ms": 7.5,
        "upstream_ms": 5.25,
        "response_id": None,
    }
    return {**row, **changes}


def _stored(request_id: str):
    with db.get_engine().connect() as connection:
        return connection.execute(select(GatewayCall).where(CALLS.c.request_id == request_id)).one()


def test_rows_written_through_a_prebuilt_insert_read_back_as_those_written_by_core(db_url):
    prebuilt = Prebuilt(insert(CALLS))
    with db.get_engine().begin() as connection:
        prebuilt.execute(connection, _row("one"))
        prebuilt.execute(connection, [_row("two", team_id=3), _row("three", stream=True, cache_hit=False)])
        connection.execute(insert(CALLS), _row("core"))
    fast, core = _stored("one"), _stored("core")
    # Times, flags, nulls and decimals come back exactly as through SQLAlchemy's own path.
    assert (fast.created_at, fast.cache_hit, fast.team_id, fast.latency_ms) == (WHEN, True, None, 7.5)
    assert fast._mapping.keys() == core._mapping.keys()
    assert {k: v for k, v in fast._mapping.items() if k not in ("id", "request_id")} == {
        k: v for k, v in core._mapping.items() if k not in ("id", "request_id")
    }
    assert (_stored("two").team_id, _stored("three").stream) == (3, True)


def test_a_driver_error_is_sqlalchemys_own_and_the_transaction_rolls_back_whole(db_url):
    prebuilt = Prebuilt(insert(CALLS))
    with db.get_engine().begin() as connection:
        prebuilt.execute(connection, _row("taken"))
    with pytest.raises(exc.IntegrityError), db.get_engine().begin() as connection:
        prebuilt.execute(connection, _row("new"))
        prebuilt.execute(connection, _row("taken"))  # request_id is unique
    with db.get_engine().connect() as connection:
        assert connection.execute(select(CALLS.c.request_id)).scalars().all() == ["taken"]


def test_rows_that_differ_in_columns_or_leave_a_default_to_python_are_refused(db_url):
    prebuilt = Prebuilt(insert(CALLS))
    with db.get_engine().begin() as connection:
        with pytest.raises(ValueError, match="same columns"):
            prebuilt.execute(connection, [_row("a"), {**_row("b"), "rule": None, "extra": 1}])
        without_time = {k: v for k, v in _row("c").items() if k != "created_at"}
        with pytest.raises(ValueError, match="Python-side defaults"):
            prebuilt.execute(connection, without_time)  # its default (the clock) is SQLAlchemy's to fill
        assert prebuilt.execute(connection, []) == 0


def test_updates_count_their_rows_returning_gives_rows_and_listeners_see_each_statement(db_url):
    seen: list[str] = []
    engine = db.get_engine()

    def note(_conn, _cursor, statement, *_rest) -> None:
        seen.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", note)
    try:
        with engine.begin() as connection:
            Prebuilt(insert(CALLS)).execute(connection, [_row("a"), _row("b")])
            bump = Prebuilt(
                update(CALLS)
                .where(CALLS.c.request_id == bindparam("r"), CALLS.c.attempts < bindparam("most"))
                .values(attempts=CALLS.c.attempts + 1)
            )
            assert bump.execute(connection, {"r": "a", "most": 5}) == 1
            assert bump.execute(connection, {"r": "a", "most": 2}) == 0  # the condition no longer holds
            taken = Prebuilt(
                update(CALLS)
                .where(CALLS.c.request_id == bindparam("r"))
                .values(attempts=CALLS.c.attempts + 1)
                .returning(CALLS.c.request_id, CALLS.c.attempts)
            )
            assert taken.fetchall(connection, {"r": "b"}) == [("b", 2)]
            assert taken.fetchall(connection, {"r": "missing"}) == []
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert seen == ["INSERT", "UPDATE", "UPDATE", "UPDATE", "UPDATE"]


def test_a_batch_of_rows_reads_back_as_rows_inserted_one_by_one_in_one_statement_on_postgresql(db_url):
    """PostgreSQL gets one multi-row INSERT (its driver would pipeline a statement per row);
    SQLite one executemany. Either way the rows are those that single inserts write."""
    engine, sent = db.get_engine(), []

    def note(_conn, _cursor, statement, parameters, _context, many) -> None:
        sent.append((statement.count("VALUES ("), statement.count("), ("), many))

    rows = [_row(f"batch-{i}", team_id=i or None, cache_hit=bool(i % 2), prompt_name="déjà vu") for i in range(5)]
    event.listen(engine, "before_cursor_execute", note)
    try:
        with engine.begin() as connection:
            assert Prebuilt(insert(CALLS)).execute(connection, rows) == 5
            for row in rows:
                Prebuilt(insert(CALLS)).execute(connection, {**row, "request_id": "single-" + row["request_id"]})
    finally:
        event.remove(engine, "before_cursor_execute", note)
    if engine.dialect.name == "postgresql":
        assert sent[0] == (1, 4, False)  # one statement, five rows
    else:
        assert sent[0] == (1, 0, True)  # one executemany of the single-row statement
    for i in range(5):
        batched, single = _stored(f"batch-{i}")._mapping, _stored(f"single-batch-{i}")._mapping
        assert {k: v for k, v in batched.items() if k not in ("id", "request_id")} == {
            k: v for k, v in single.items() if k not in ("id", "request_id")
        }


def test_a_batch_that_breaks_a_constraint_fails_whole_as_the_driver_says(db_url):
    prebuilt = Prebuilt(insert(CALLS))
    with pytest.raises(exc.IntegrityError), db.get_engine().begin() as connection:
        prebuilt.execute(connection, [_row("x"), _row("y"), _row("x")])  # request_id is unique
    with db.get_engine().connect() as connection:
        assert connection.execute(select(CALLS.c.request_id)).scalars().all() == []


def _upsert(dialect: str):
    from sqlalchemy.dialects import postgresql, sqlite

    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CALLS)
    return statement.on_conflict_do_update(
        index_elements=[CALLS.c.request_id], set_={"attempts": CALLS.c.attempts + statement.excluded.attempts}
    )


def test_an_upsert_shares_a_statement_only_when_its_callers_send_one_row_per_key(db_url):
    engine, sent = db.get_engine(), []

    def note(_conn, _cursor, statement, _parameters, _context, many) -> None:
        sent.append("executemany" if many else f"{statement.count('), (') + 1} rows")

    event.listen(engine, "before_cursor_execute", note)
    try:
        with engine.begin() as connection:
            distinct = Prebuilt(_upsert(engine.dialect.name), distinct_rows=True)
            distinct.execute(connection, [_row("a", attempts=1), _row("b", attempts=2)])
            distinct.execute(connection, [_row("a", attempts=10), _row("b", attempts=20)])
            # Two rows for one key in one call: each must see the other's update.
            Prebuilt(_upsert(engine.dialect.name)).execute(connection, [_row("c", attempts=1), _row("c", attempts=5)])
    finally:
        event.remove(engine, "before_cursor_execute", note)
    if engine.dialect.name == "postgresql":
        assert sent == ["2 rows", "2 rows", "executemany"]
    else:
        assert sent == ["executemany"] * 3
    assert [_stored(r).attempts for r in ("a", "b", "c")] == [11, 22, 6]


def test_an_upsert_of_several_rows_returns_every_row_on_postgresql_and_is_refused_where_it_cannot(db_url):
    engine = db.get_engine()
    upsert = Prebuilt(_upsert(engine.dialect.name).returning(CALLS.c.request_id, CALLS.c.attempts), distinct_rows=True)
    with engine.begin() as connection:
        upsert.execute(connection, [_row("a", attempts=1)])
        rows = [_row("a", attempts=10), _row("b", attempts=2), _row("c", attempts=3)]
        if engine.dialect.name == "postgresql":  # one multi-row INSERT ... RETURNING
            assert sorted(upsert.fetchall(connection, rows)) == [("a", 11), ("b", 2), ("c", 3)]
        else:  # executemany keeps only its last statement's rows: refused, not half an answer
            with pytest.raises(ValueError, match="one multi-row INSERT"):
                upsert.fetchall(connection, rows)
        assert upsert.fetchall(connection, [_row("d", attempts=4)]) == [("d", 4)]


def test_a_literal_percent_and_a_value_named_twice_reach_the_database_as_written(db_url):
    # On PostgreSQL the statement goes out with `$n` placeholders: a `%` of the SQL itself
    # (escaped as `%%` for psycopg's named placeholders) and a value used in two places
    # must come out as the statement means them.
    with db.get_engine().begin() as connection:
        Prebuilt(insert(CALLS)).execute(connection, [_row("50%-off", attempts=3), _row("plain", attempts=3)])
        query = Prebuilt(
            select(CALLS.c.request_id, literal_column("'100%'"))
            .where(CALLS.c.request_id.like(literal_column("'%\\%%'"), escape="\\"))
            .where(CALLS.c.attempts >= bindparam("n"), CALLS.c.attempts <= bindparam("n"))
        )
        assert query.fetchall(connection, {"n": 3}) == [("50%-off", "100%")]
        assert query.fetchall(connection, {"n": 4}) == []
