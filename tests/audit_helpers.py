"""Shared helpers for the audit-chain tests: write events, tamper like an attacker with SQL."""

from __future__ import annotations

import sqlite3
import uuid

from sqlalchemy import text

from core import db
from core.audit import chain as audit_chain
from core.audit import verify as audit_verify
from core.audit.record import committing, record
from core.permissions import Actor

SYSTEM = Actor.system("test")
# A fixed Ed25519 seed (hex): tests only.
TEST_KEY = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

EVENT_COLUMNS = (
    "seq",
    "event_id",
    "occurred_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "team_id",
    "before_json",
    "after_json",
    "prev_hash",
    "hash",
)
_RAW = "event_id, occurred_at, actor, action, target_type, target_id, team_id, before_json, after_json"


def add_events(session, count: int, *, action: str = "thing.change", team_id: int | None = None) -> None:
    for i in range(count):
        with committing(session):
            record(
                session,
                actor=SYSTEM,
                action=action,
                target_type="thing",
                target_id=i,
                team_id=team_id,
                before={"n": i},
                after={"n": i + 1},
            )


def sql(statement: str, params: dict | None = None) -> None:
    """Run raw SQL on its own connection, as someone with write access to the database would."""
    from sqlalchemy import text

    with db.get_engine().begin() as conn:
        conn.execute(text(statement), params or {})


def rehash_from(seq: int) -> None:
    """Recompute every hash from `seq` on and the head, consistently (the attacker's best effort)."""
    from sqlalchemy import text

    with db.get_engine().begin() as conn:
        prev = (
            conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq - 1}).scalar()
            or audit_chain.GENESIS_HASH
        )
        rows = conn.execute(text(f"SELECT id, {_RAW} FROM audit_event WHERE seq >= :s ORDER BY seq"), {"s": seq}).all()
        for row in rows:
            digest = audit_chain.row_hash((*row[1:], prev))
            conn.execute(
                text("UPDATE audit_event SET prev_hash = :p, hash = :h WHERE id = :i"),
                {"p": prev, "h": digest, "i": row[0]},
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET head_hash = :h"), {"h": prev})


def problems(session) -> list[str]:
    return verify(session).lines()


def verify(session):
    return audit_verify.verify_chain(session=session, actor=SYSTEM)


def hash_of(seq: int) -> str:
    from sqlalchemy import text

    with db.get_engine().connect() as conn:
        return conn.execute(text("SELECT hash FROM audit_event WHERE seq = :s"), {"s": seq}).scalar()


def on_sqlite() -> bool:
    return db.get_engine().dialect.name == "sqlite"


def insider(statement: str, **params) -> None:
    """One statement on a connection of the insider's own: sqlite3 on the file, or the PostgreSQL tables."""
    engine = db.get_engine()
    if engine.dialect.name == "sqlite":
        conn = sqlite3.connect(engine.url.database)
        try:
            conn.execute(statement, params)
            conn.commit()
        finally:
            conn.close()
    else:
        with engine.begin() as conn:
            conn.execute(text(statement), params)


def forge(seq: int, *, prev_hash: str, like: int = 1, **changes) -> None:
    """Insert an event numbered `seq` whose own hash is right: a copy of event `like` with `changes`."""
    with db.get_engine().connect() as conn:
        row = dict(
            conn.execute(text(f"SELECT {', '.join(EVENT_COLUMNS)} FROM audit_event WHERE seq = :s"), {"s": like})
            .mappings()
            .one()
        )
    row.update(seq=seq, event_id=str(uuid.uuid4()), prev_hash=prev_hash, **changes)
    hashed = tuple(row[c] for c in audit_chain.HASHED_COLUMNS)
    row["hash"] = audit_chain.row_hash(hashed)
    with db.get_engine().begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO audit_event ({', '.join(EVENT_COLUMNS)}) VALUES "
                f"({', '.join(':' + c for c in EVENT_COLUMNS)})"
            ),
            row,
        )
