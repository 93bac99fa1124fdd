"""Finding a data subject's name or e-mail in stored text, exactly.

A subject's name is data a person typed: it may hold `%`, `_` or `\\`, which LIKE reads as
wildcards or escapes. Look-ups therefore (1) narrow rows down in SQL with the wildcards
escaped (`icontains(..., autoescape=True)`: an ESCAPE clause on SQLite and PostgreSQL), then
(2) keep a row only when the text holds the needle as a whole token: not inside a longer
word, so "Ann" never matches "Annual" and "%%%" matches only "%%%". Text stored as JSON holds
escapes such as `\\n` before a name, which count as a boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from sqlalchemy import ColumnElement, SQLColumnExpression, or_

# Before a token: no word character, or a JSON escape (\n, \t...) that ends just there.
_BEFORE = r"(?:(?<!\w)|(?<=\\[nrtbf]))"
_AFTER = r"(?!\w)"


def forms(needle: str) -> list[str]:
    """The needle as typed and as it appears inside JSON text (escaped), without repeats."""
    found = [needle, json.dumps(needle)[1:-1], json.dumps(needle, ensure_ascii=False)[1:-1]]
    return list(dict.fromkeys(found))


def token_pattern(needles: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = sorted({re.escape(f) for n in needles for f in forms(n)}, key=len, reverse=True)
    if not alternatives:
        return None
    return re.compile(f"{_BEFORE}(?:{'|'.join(alternatives)}){_AFTER}", re.IGNORECASE)


def mentions(text: str | None, pattern: re.Pattern[str] | None) -> bool:
    if not text or pattern is None:
        return False
    return pattern.search(text) is not None


def scrub(text: str, pattern: re.Pattern[str], replacement: str) -> str:
    return pattern.sub(replacement, text)


def may_mention(column: SQLColumnExpression[str | None], needles: Iterable[str]) -> ColumnElement[bool]:
    """SQL that is true for every row whose `column` could mention a needle (wildcards escaped)."""
    return or_(*(column.icontains(f, autoescape=True) for n in needles for f in forms(n)))
