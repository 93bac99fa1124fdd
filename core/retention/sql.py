"""SQL text as retention runs it: the kinds' conditions are SQL text shared by the preview,
the batches and the lock, so they are executed through this one door."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from core.db import AnyResult
from core.models.types import UtcDateTime


def run(session: Session, statement: str, params: dict[str, Any]) -> AnyResult:
    """Execute SQL text; datetime parameters go through UtcDateTime (SQLite stores naive UTC text)."""
    clause = text(statement)
    typed = [bindparam(k, type_=UtcDateTime()) for k, v in params.items() if isinstance(v, datetime)]
    return session.execute(clause.bindparams(*typed) if typed else clause, params)
