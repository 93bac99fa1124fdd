"""Prebuilt statements: a Core statement compiled once per database and run on the driver's cursor.

The gateway's hot path runs the same few statements for every call (the admission's
reservation, the write-back's inserts, the audit head). Through `Connection.execute` each
one costs about a tenth of a millisecond of CPU in SQLAlchemy before the driver sees it:
the compiled-cache lookup, building the execution context, processing every parameter,
wrapping the cursor in a result; for a one-row INSERT that is several times what the
driver itself spends. A `Prebuilt` compiles its statement once per dialect (and set of
columns, for an INSERT), keeps the SQL text, the order of its parameters and the type
conversions the dialect asks for (SQLite stores times as text), and hands the rows
straight to the DBAPI cursor of the connection's transaction (with psycopg, a raw cursor
and the statement in PostgreSQL's own `$1` placeholders, which psycopg sends as they are).

What stays the same as `Connection.execute`: the statement runs in the caller's
transaction (begun first if it is not); `before_cursor_execute` and `after_cursor_execute`
listeners still see it (tests count the hot-row updates that way); a driver error is
raised as SQLAlchemy's own exception type (`IntegrityError`, `OperationalError`, ...), and a
lost connection is invalidated so the pool does not hand it out again.

Only for statements whose every value comes from the parameters: an INSERT whose table
would fill a column from a Python-side default, or a statement SQLAlchemy would need to
post-process, is refused when it is first compiled (use `Connection.execute` for those).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

# Rows sent as one INSERT at most (a write-back batch's; bulk writes keep executemany, whose
# statement text does not grow with the rows and stays under PostgreSQL's 65,535 parameters).
ROWS_PER_INSERT = 64
# A named-parameter INSERT's single VALUES row of plain placeholders, each perhaps cast to its
# column's type (`%(name)s::VARCHAR`), as SQLAlchemy writes them for psycopg.
_VALUE = r"%\(\w+\)s(?:::[A-Za-z][A-Za-z0-9_ ]*(?:\([0-9, ]+\))?(?:\[\])?)?"
_INSERT_ROW = re.compile(rf"(INSERT INTO .+? VALUES )(\({_VALUE}(?:, {_VALUE})*\))(.*)", re.DOTALL)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class _Compiled:
    __slots__ = (
        "sql",
        "names",
        "positional",
        "fixed",
        "raw_cursor",
        "_values",
        "_converted",
        "_row",
        "_rows_sql",
    )

    def __init__(
        self,
        sql: str,
        names: tuple[str, ...],
        processors: dict[str, Callable[[Any], Any]],
        positional: bool,
        fixed: dict[str, Any],
        distinct_rows: bool = False,
        raw_cursor: Callable[[Any], Any] | None = None,
    ) -> None:
        self.sql, self.names, self.positional = sql, names, positional
        self.fixed = fixed  # the values written into the statement itself (`attempts + 1`)
        # psycopg: the statement with PostgreSQL's own `$1` placeholders and its values as a
        # tuple, for a raw cursor, which sends them as they are. Through named placeholders
        # psycopg parsed the statement for them on every execution (its cache keeps only
        # short statements, and hashing the text to look it up cost as much): a tenth of a
        # gateway process's time on PostgreSQL.
        self.raw_cursor = raw_cursor
        # The row's values in the statement's order, picked in C (the write-back's INSERTs have
        # dozens of columns), and the few positions whose values the dialect converts.
        picks = itemgetter(*names) if names else None
        self._values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            (lambda row: ()) if picks is None else (lambda row: (picks(row),)) if len(names) == 1 else picks
        )
        self._converted = tuple((i, processors[name]) for i, name in enumerate(names) if name in processors)
        # Several rows in one INSERT only where they pay (psycopg pipelines executemany).
        self._row = _values_row(sql, names, distinct_rows) if raw_cursor is not None else None
        self._rows_sql: dict[int, str] = {}
        if raw_cursor is not None:
            self.sql = _numbered(sql, names, 0)

    def rows_sql(self, count: int) -> str | None:
        """This INSERT for `count` rows in one statement (`VALUES (...), (...)`), where it is a
        plain named-parameter INSERT, without DO UPDATE unless its callers never send two rows
        for one key (PostgreSQL refuses a statement that updates one row twice)."""
        if self._row is None:
            return None
        sql = self._rows_sql.get(count)
        if sql is None:
            head, row, tail = self._row
            width = len(self.names)
            rows = ", ".join(_numbered(row, self.names, i * width) for i in range(count))
            sql = self._rows_sql[count] = _numbered(head, (), 0) + rows + _numbered(tail, (), 0)
        return sql

    @staticmethod
    def rows_parameters(rows: list[Any]) -> tuple[Any, ...]:
        """The values of `rows` (each from `parameters`) for `rows_sql(len(rows))`."""
        return tuple(value for row in rows for value in row)

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if self.fixed:
            row = {**self.fixed, **row}
        values = self._values(row)
        if self._converted:
            changed = list(values)
            for index, convert in self._converted:
                changed[index] = convert(changed[index])
            values = tuple(changed)
        return values if self.positional or self.raw_cursor is not None else dict(zip(self.names, values))


_NAMED_OR_PERCENT = re.compile(r"%%|%\((\w+)\)s")


def _numbered(sql: str, names: tuple[str, ...], offset: int) -> str:
    """`sql` with each `%(name)s` as `$n` (n: the name's place in `names`, after `offset`) and
    each `%%` as the `%` it stands for."""
    where = {name: offset + i + 1 for i, name in enumerate(names)}
    return _NAMED_OR_PERCENT.sub(lambda m: "%" if m.group(1) is None else f"${where[m.group(1)]}", sql)


def _values_row(sql: str, names: tuple[str, ...], distinct_rows: bool) -> tuple[str, str, str] | None:
    found = _INSERT_ROW.fullmatch(sql)
    if found is None or ("DO UPDATE" in found.group(3) and not distinct_rows):
        return None
    if sorted(_PLACEHOLDER.findall(found.group(2))) != sorted(names):
        return None  # a parameter outside the row (or one twice): keep one statement per row
    return found.group(1), found.group(2), found.group(3)


class Prebuilt:
    """`statement` run on the driver's cursor; see the module's story for what is kept."""

    def __init__(self, statement: ClauseElement, *, distinct_rows: bool = False) -> None:
        """`distinct_rows`: an upsert whose callers never send two rows with one conflict key
        in one call (roll-up groups, keyed by it), so its rows may go in one statement."""
        self._statement, self._distinct_rows = statement, distinct_rows
        self._compiled: dict[tuple[str, tuple[str, ...] | None], _Compiled] = {}

    def execute(self, connection: Connection, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
        """Run the statement for one row of parameters or for each of many (one executemany);
        returns the driver's row count (rows changed, for an UPDATE or DELETE)."""
        count: int = self._run(connection, rows, fetch=False)
        return count

    def fetchall(
        self, connection: Connection, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Run a statement with RETURNING (or a SELECT) for one row of parameters, or an INSERT
        ... RETURNING for several where they go as one statement (`rows_sql`); the rows it
        returns as the driver gives them (no type conversion: for integer and text columns)."""
        found: list[tuple[Any, ...]] = self._run(connection, rows, fetch=True)
        return found

    def _run(self, connection: Connection, rows: Any, *, fetch: bool) -> Any:
        statement = self.statement(connection, rows)
        if statement is None:
            return 0
        if fetch and statement.many and len(statement.parameters) > 1:
            raise ValueError("rows are returned for one row of parameters, or for one multi-row INSERT")
        return run_statement(connection, statement, fetch=fetch)

    def statement(self, connection: Connection, rows: Any) -> Statement | None:
        """What is sent for `rows` (one row of parameters or a list) on `connection`'s database;
        None for no rows."""
        many = not isinstance(rows, Mapping)
        batch: Sequence[Mapping[str, Any]] = rows if many else [rows]
        if not batch:
            return None
        columns = tuple(batch[0]) if isinstance(self._statement, Insert) else None
        compiled = self._compiled.get((connection.dialect.name, columns))
        if compiled is None:
            compiled = self._compiled[connection.dialect.name, columns] = self._compile(connection.dialect, columns)
        if columns is not None and any(len(row) != len(columns) for row in batch):
            raise ValueError("every row of one prebuilt INSERT must name the same columns")
        parameters: list[Any] = [compiled.parameters(row) for row in batch]
        sql, sent = compiled.sql, parameters if many else parameters[0]
        if many and 1 < len(parameters) <= ROWS_PER_INSERT:
            # On PostgreSQL one INSERT of all the rows: psycopg's executemany pipelines a
            # statement per row, three times the CPU of one statement for two rows.
            rows_sql = compiled.rows_sql(len(parameters))
            if rows_sql is not None:
                sql, many = rows_sql, False
                sent = compiled.rows_parameters(parameters)
        return Statement(sql, sent, many, parameters, compiled.raw_cursor)

    def _compile(self, dialect: Dialect, columns: tuple[str, ...] | None) -> _Compiled:
        compiled = self._statement.compile(dialect=dialect, column_keys=list(columns) if columns else None)
        if not isinstance(compiled, SQLCompiler):
            raise ValueError(f"not a SQL statement to prebuild: {compiled}")
        if compiled.insert_prefetch or compiled.update_prefetch or compiled.escaped_bind_names:
            raise ValueError(f"not a statement to prebuild (Python-side defaults or escaped names): {compiled}")
        names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        processors: dict[str, Callable[[Any], Any]] = {
            name: proc for name, proc in compiled._bind_processors.items() if callable(proc)
        }
        fixed = {name: bind.value for name, bind in compiled.binds.items() if not bind.required and name in names}
        raw_cursor = None
        if dialect.driver == "psycopg" and not compiled.positional:
            from psycopg import RawCursor  # only where PostgreSQL is used through psycopg

            raw_cursor = RawCursor
        return _Compiled(
            compiled.string, names, processors, compiled.positional, fixed, self._distinct_rows, raw_cursor
        )


@dataclass(frozen=True)
class Statement:
    """One execution of a prebuilt statement: its SQL, the values sent with it, and whether it
    is an executemany of `parameters` (rows that could not share one statement)."""

    sql: str
    sent: Any
    many: bool
    parameters: list[Any]
    raw_cursor: Callable[[Any], Any] | None  # psycopg's RawCursor, for `$n` placeholders

    @property
    def one_statement(self) -> bool:
        """One statement with `$n` placeholders (PostgreSQL), which may run inside another."""
        return self.raw_cursor is not None and (not self.many or len(self.parameters) == 1)


def run_statement(connection: Connection, statement: Statement, *, fetch: bool) -> Any:
    """Run `statement` on the DBAPI cursor of `connection`'s transaction (begun if it is not);
    its rows (`fetch`) or its row count."""
    sql, sent, many, parameters = statement.sql, statement.sent, statement.many, statement.parameters
    if not connection.in_transaction():
        connection.begin()
    raw = connection.connection
    kept = statement.raw_cursor is not None
    cursor = _kept_cursor(raw, statement.raw_cursor) if statement.raw_cursor is not None else raw.cursor()
    dispatch = connection.dispatch
    try:
        if dispatch.before_cursor_execute:
            dispatch.before_cursor_execute(connection, cursor, sql, sent, None, many)
        if many and len(parameters) > 1:
            cursor.executemany(sql, parameters)
        elif many:
            cursor.execute(sql, parameters[0])
        else:
            cursor.execute(sql, sent)
        found = cursor.fetchall() if fetch else cursor.rowcount
        if dispatch.after_cursor_execute:
            dispatch.after_cursor_execute(connection, cursor, sql, sent, None, many)
        return found
    except connection.dialect.loaded_dbapi.Error as error:
        if connection.dialect.is_disconnect(error, raw.dbapi_connection, cursor):
            connection.invalidate(error)
        raise exc.DBAPIError.instance(
            sql, sent, error, connection.dialect.loaded_dbapi.Error, dialect=connection.dialect
        ) from error
    finally:
        if not kept:
            cursor.close()


# The raw cursor kept with a pooled psycopg connection: (the driver's connection, its cursor).
_CURSOR = "quorum_prebuilt_cursor"


def _kept_cursor(raw: Any, factory: Callable[[Any], Any]) -> Any:
    """One raw cursor per driver connection, used for every prebuilt statement on it: a cursor
    made and closed per statement was a quarter of psycopg's CPU for the statement (15 of
    56 µs for a one-row UPDATE). A connection serves one thread at a time, and a statement's
    rows are read before the next one runs, so one cursor is enough. Checked against the
    driver's connection, which a reconnect replaces."""
    dbapi_connection = raw.dbapi_connection
    found = raw.info.get(_CURSOR)
    if found is None or found[0] is not dbapi_connection or found[1].closed:
        found = raw.info[_CURSOR] = (dbapi_connection, factory(dbapi_connection))
    return found[1]
