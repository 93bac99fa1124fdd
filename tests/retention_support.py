"""Helpers for the retention tests: a movable clock and rows dated in the past."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert

from core import clock, db
from core.models.budgets import UsageRecord
from core.models.gateway import GatewayCall, StoredPayload

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at
        clock.set_clock(lambda: self.at)

    def set(self, at: datetime) -> None:
        self.at = at


def add_payloads(
    count: int, *, at: datetime, team_id: int | None, prefix: str = "r", actor: str = "key:1", text: str = "hello"
) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(count)]
    with db.get_engine().begin() as conn:
        conn.execute(
            insert(StoredPayload.__table__),
            [
                {
                    "request_id": r,
                    "created_at": at,
                    "team_id": team_id,
                    "request_json": '{"request": {"messages": [{"role": "user", "content": "' + text + '"}]}}',
                    "response_json": '{"choices": []}',
                }
                for r in ids
            ],
        )
        conn.execute(
            insert(GatewayCall.__table__),
            [
                {
                    "request_id": r,
                    "created_at": at,
                    "team_id": team_id,
                    "actor": actor,
                    "endpoint": "chat",
                    "model": "gpt-4o-mini",
                    "status": "ok",
                    "http_status": 200,
                    "stream": False,
                    "cache_hit": False,
                    "simulated": True,
                    "attempts": 1,
                    "input_tokens": 1,
                    "output_tokens": 1,
                    "usage_estimated": False,
                    "cost_micro": 1,
                    "latency_ms": 1.0,
                    "upstream_ms": 1.0,
                }
                for r in ids
            ],
        )
    return ids


def add_usage(count: int, *, at: datetime, team_id: int, person_id: int | None = None) -> None:
    with db.get_engine().begin() as conn:
        conn.execute(
            insert(UsageRecord.__table__),
            [
                {
                    "occurred_at": at,
                    "team_id": team_id,
                    "person_id": person_id,
                    "model": "gpt-4o-mini",
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "cost_micro": 42,
                }
                for _ in range(count)
            ],
        )


def count(table: str, where: str = "1=1") -> int:
    from sqlalchemy import text

    with db.get_engine().connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE {where}")).scalar()


def written(service, **kwargs):
    """Call a service with a write session of its own, closed afterwards (as pages and the CLI do)."""
    with db.session_scope(write=True) as session:
        return service(session=session, **kwargs)
