"""One retention run at a time across servers: a lease row (retention_lock) that the runner
renews with every batch; a crashed runner's lease simply expires."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core import clock, db
from core.db import changed_rows
from core.errors import Conflict
from core.models.retention import RetentionLock
from core.retention.sql import run as run_sql

LEASE = timedelta(minutes=5)
LOCK_NAME = "enforce"


def acquire(engine: Engine, holder: str) -> None:
    with db.write_session(engine) as session:
        now = clock.now()
        taken = changed_rows(
            run_sql(
                session,
                "UPDATE retention_lock SET holder = :me, expires_at = :exp "
                "WHERE name = :name AND (expires_at < :now OR holder = :me)",
                {"me": holder, "exp": now + LEASE, "name": LOCK_NAME, "now": now},
            )
        )
        if not taken:
            if session.get(RetentionLock, LOCK_NAME) is not None:
                raise Conflict("Another retention run is in progress; try again when it has finished")
            session.add(RetentionLock(name=LOCK_NAME, holder=holder, expires_at=now + LEASE))
        try:
            session.commit()
        except IntegrityError:
            raise Conflict("Another retention run is in progress; try again when it has finished") from None


def renew(session: Session, holder: str) -> None:
    now = clock.now()
    params = {"me": holder, "exp": now + LEASE, "name": LOCK_NAME}
    renewed = changed_rows(
        run_sql(session, "UPDATE retention_lock SET expires_at = :exp WHERE name = :name AND holder = :me", params)
    )
    if not renewed:
        raise Conflict("The retention run lost its lock (its lease expired); it will resume on the next run")


def release(engine: Engine, holder: str) -> None:
    with db.write_session(engine) as session:
        session.execute(
            text("DELETE FROM retention_lock WHERE name = :name AND holder = :me"), {"name": LOCK_NAME, "me": holder}
        )
        session.commit()
