"""The full demo for the page tests, seeded once per worker and copied into each test's database.

Seeding the demo takes seconds (some 33,000 rows: two months of ledger, roll-ups, calls,
experiments, alerts, a reconciled bill), and about sixty page tests each want it fresh.
The first test of a worker seeds it as `demo.seed` always does and keeps what it wrote: every
table's rows, and the files the seed writes beside the database (the simulated provider's
bill, the audit checkpoints). Every later test gets those rows inserted into its own empty
database with their ids, and the files copied to its own paths.

The demo is laid out relative to the time it was seeded ("spent in the last hour", "due in
three days"), so a test that gets a copy runs on a clock moved back to when the copy was
seeded, ticking from there: it sees the demo exactly as a test that had just seeded it.

Tests of the seed itself (what `demo.seed` writes, and when) keep calling it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlmodel import Session, SQLModel

from core import clock, db, demo
from core.settings import settings

# The per-test paths (tests/conftest.py's `_isolated_environment`): not part of what the demo is.
_PER_TEST = {"QUORUM_SECRETS_FILE", "QUORUM_AUDIT_CHECKPOINT_DIR", "QUORUM_SIMULATOR_BILLING_LOG", "DATABASE_URL"}


@dataclass(frozen=True)
class _Snapshot:
    rows: dict[str, list[dict[str, Any]]]  # table name -> rows, parents first
    files: dict[str, bytes]  # "billing" or a checkpoint file's name -> its bytes
    seeded_at: datetime  # the real time the seed ended


_snapshots: dict[tuple[tuple[str, str], ...], _Snapshot] = {}


def seed_demo() -> None:
    """The demo seeded as `quorum run --demo` seeds it: in a write session, whose transactions
    take SQLite's write lock at their first statement (a deferred one that read first cannot
    write once another connection, the gateway's background fold, committed meanwhile)."""
    with db.write_session() as writer:
        demo.seed(writer)
        writer.commit()


def seeded_demo(session: Session) -> Session:
    """`session`'s empty database with the full demo in it, and the demo's files."""
    environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("QUORUM_") and k not in _PER_TEST))
    snapshot = _snapshots.get(environment)
    if snapshot is None:
        seed_demo()
        session.rollback()
        _snapshots[environment] = _take(session)
        return session
    _restore(session, snapshot)
    moved_back = datetime.now(UTC) - snapshot.seeded_at
    clock.set_clock(lambda: datetime.now(UTC) - moved_back)  # the autouse fixture restores the real one
    return session


def _take(session: Session) -> _Snapshot:
    rows = {
        table.name: [
            dict(row) for row in session.execute(select(table).order_by(*table.primary_key.columns)).mappings()
        ]
        for table in SQLModel.metadata.sorted_tables
    }
    files: dict[str, bytes] = {}
    config = settings()
    if config.simulator_billing_log.exists():
        files["billing"] = config.simulator_billing_log.read_bytes()
    if config.audit_checkpoint_dir.is_dir():
        for path in config.audit_checkpoint_dir.iterdir():
            if path.is_file():
                files[f"checkpoint/{path.name}"] = path.read_bytes()
    return _Snapshot(rows, files, datetime.now(UTC))


def _restore(session: Session, snapshot: _Snapshot) -> None:
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    for table in SQLModel.metadata.sorted_tables:  # parents first, so every foreign key finds its row
        rows = snapshot.rows.get(table.name)
        if rows:
            connection.execute(insert(table), rows)
    if postgres:  # each id sequence goes on after the copied ids, as after a seed
        for table in SQLModel.metadata.sorted_tables:
            if "id" in table.c and snapshot.rows.get(table.name):
                name = f'"{table.name}"'
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), MAX(id)) FROM {name}"))
    session.commit()
    config = settings()
    for name, data in snapshot.files.items():
        if name == "billing":
            target = config.simulator_billing_log
        else:
            target = config.audit_checkpoint_dir / name.removeprefix("checkpoint/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
