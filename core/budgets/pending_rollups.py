"""Settled calls waiting for the roll-ups, and the fold that adds them, many calls at once.

The roll-ups (`rollups.py`, `daily_rollups.py`, `version_rollups.py`) hold rows that every
call of a team adds to: the team's hour, six hours and day; a key's network row
(`key_networks.py`) is one every call of the key adds to. Written by every settled batch,
they were the gateway's hottest rows: on PostgreSQL two processes' batches took turns on
them from their first roll-up upsert to their commit, and they were about a third of a
batch's statements. So the settle writes only a row of `rollup_pending` per call (in the
call's own transaction, with its call-log and ledger rows; with the network prefix of a team
key's call), and `fold` adds the calls those rows name to every roll-up and to their keys'
networks and deletes the rows, in one transaction: a call is in the roll-ups exactly when it
has no pending row, whatever crashed when.

Who folds: each process that settles calls, in the background, about every
`gateway.rollup_folder.FOLD_EVERY_S` (core/gateway/rollup_folder.py); and every reader of the
roll-ups first (`catch_up`), so that a page shows every call committed before it began,
as it did when the settle wrote the roll-ups itself. A rebuild counts only calls that are
not pending (`rollups.rebuild`): the pending ones are added by their fold, once.

Locks, on PostgreSQL: a fold locks the roll-up tables (ROW EXCLUSIVE, which folds share)
before anything else, in the order a rebuild locks them (SHARE ROW EXCLUSIVE, `rollups.lock`),
so a fold and a rebuild or a retention run never wait on each other in a circle; two folds
claim different pending rows (SKIP LOCKED) and upsert roll-up rows in key order, as batches did.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, bindparam, insert, select, text

from core import db, sqlite_engine
from core.budgets import key_networks, rollups
from core.prebuilt import Prebuilt
from core.together import Part

PENDING = rollups.PENDING

# Calls claimed per fold transaction. A fold of 500 took about 20 ms on SQLite and 45 ms on
# PostgreSQL (2 cores); on SQLite it holds the one write lock meanwhile, so settles wait for it.
FOLD_CHUNK = 500

_INSERT = Prebuilt(insert(PENDING))
_ANY = select(PENDING.c.request_id).limit(1)
_CALLS = select(rollups.CALLS.c.request_id, *(rollups.CALLS.c[c] for c in rollups.CALL_COLUMNS)).where(
    rollups.CALLS.c.request_id.in_(bindparam("ids", expanding=True))
)
_LEDGER = select(*(rollups.LEDGER.c[c] for c in rollups.LEDGER_COLUMNS)).where(
    rollups.LEDGER.c.request_id.in_(bindparam("ids", expanding=True))
)
_CLAIM = {
    # One statement: the rows another fold holds are skipped, not waited for.
    "postgresql": text(
        "DELETE FROM rollup_pending WHERE request_id IN "
        "(SELECT request_id FROM rollup_pending LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING request_id, network"
    ),
    # SQLite's write transaction excludes every other writer: nothing to skip.
    "sqlite": text(
        "DELETE FROM rollup_pending WHERE request_id IN "
        "(SELECT request_id FROM rollup_pending LIMIT :n) RETURNING request_id, network"
    ),
}


def pend(calls: Sequence[tuple[str, str | None]]) -> Part:
    """The settle's part (core.together): these calls, (request id, the network prefix of a
    team key's call or None), wait for the roll-ups."""
    return (_INSERT, [{"request_id": r, "network": n} for r, n in calls])


def fold(connection: Connection, *, limit: int = FOLD_CHUNK) -> int:
    """Add up to `limit` waiting calls to the roll-ups, in the caller's write transaction;
    how many were claimed (0: none waits, as this transaction sees it)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"LOCK TABLE {rollups.LOCKED_TABLES} IN ROW EXCLUSIVE MODE"))
    claimed = connection.execute(_CLAIM[connection.dialect.name], {"n": limit}).all()
    if not claimed:
        return 0
    ids = [request_id for request_id, _network in claimed]
    calls = [r._mapping for r in connection.execute(_CALLS, {"ids": ids})]
    ledger = [r._mapping for r in connection.execute(_LEDGER, {"ids": ids})]
    rollups.add_call_rows(connection, calls)
    rollups.add_ledger_rows(connection, ledger)
    networks = {request_id: network for request_id, network in claimed if network is not None}
    if networks:
        key_networks.add(
            connection,
            [
                (c["key_id"], c["team_id"], networks[c["request_id"]], c["created_at"])
                for c in calls
                if c["request_id"] in networks and c["key_id"] is not None
            ],
        )
    return len(claimed)


def fold_all(engine: Engine | None = None) -> int:
    """Fold until nothing waits, a chunk per committed transaction; how many calls were folded."""
    folded = 0
    while True:
        with db.write_session(engine) as session:
            claimed = fold(session.connection())
            session.commit()
        folded += claimed
        if claimed < FOLD_CHUNK:
            return folded


def catch_up(connection: Connection) -> None:
    """Before a read of the roll-ups: fold every call settled so far, so the read counts them.

    Cheap when nothing waits (one probe of an index). The fold commits in a transaction of its
    own, which the caller's next statement sees (on SQLite its read transaction is renewed; one
    that has written keeps its snapshot, and with it the roll-ups of when it began). A
    connection that already holds SQLite's write lock folds in its own transaction (another
    one would wait for it)."""
    if sqlite_engine.holds_writer_lock(connection):
        while fold(connection) == FOLD_CHUNK:
            pass
        return
    # Probed on a connection of its own: on SQLite a read on the caller's would fix its
    # transaction's snapshot before the fold commits.
    with connection.engine.connect() as probe:
        waiting = probe.execute(_ANY).first() is not None
    if waiting:
        fold_all(connection.engine)
    # SQLite: a transaction that has read already keeps its snapshot, from before this fold
    # (or a background one); one that only read begins afresh. PostgreSQL's next statement
    # sees every commit (READ COMMITTED).
    sqlite_engine.renew_snapshot(connection)
