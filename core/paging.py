"""Pages of a list, newest first, by keyset (`id < cursor`): a table shows every row, a page
at a time, and never stops silently at a cap.

A page knows how many rows match in all (the caption says "51–100 of 612") and the cursor of
the next, older page (None on the last one). A row added while someone pages does not shift
the rows they have not seen yet, as an offset would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import ValidationError

T = TypeVar("T")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    older: int | None  # pass as `before` for the next (older) page; None on the last page
    total: int  # rows matching in all pages
    first: int  # 1-based position of the first item among them

    @property
    def caption(self) -> str:
        if not self.items:
            return f"0 of {self.total:,}"
        return f"{self.first:,}–{self.first + len(self.items) - 1:,} of {self.total:,}"


def keyset_page(
    session: Session,
    query: Any,
    id_column: Any,
    *,
    before: int | None,
    limit: int = PAGE_SIZE,
    convert: Callable[[Any], T],
) -> Page[T]:
    """One page of `query` (a select of whole rows, filtered, unordered), newest `id_column` first."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"A page holds 1 to {MAX_PAGE_SIZE} rows")
    matching = query.subquery()
    total = session.execute(select(func.count()).select_from(matching)).scalar_one()
    newer = 0
    if before is not None:
        newer = session.execute(
            select(func.count()).select_from(matching).where(matching.c[id_column.key] >= before)
        ).scalar_one()
        query = query.where(id_column < before)
    rows = session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).all()
    items = [convert(row) for row in rows[:limit]]
    older = getattr(rows[limit - 1], id_column.key) if len(rows) > limit else None
    return Page(items=items, older=older, total=total, first=newer + 1)
