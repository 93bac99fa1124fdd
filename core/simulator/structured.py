"""Structured answers for JSON schemas whose shape says what task they are for.

A schema's required properties name its task: ``parties`` + ``obligations`` +
``needs_human_review`` is a contract extraction (``contracts``), ``verdict`` +
``claim_issues`` a copy review (``reviews``). Such a request gets the task done on the
input rather than a generic instance; the answer is checked against the schema, and a
schema the task's answer does not fit falls back to the generic instance.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema

from core.simulator import contracts, reviews
from core.simulator.understanding import Reading


def structured_answer(schema: dict[str, Any], reading: Reading) -> dict[str, Any] | None:
    """The task's answer for ``schema``, or None when the schema names no known task."""
    names = set((schema.get("properties") or {}).keys())
    answer: dict[str, Any] | None = None
    if {"parties", "obligations", "needs_human_review"} <= names:
        ours = re.search(r"^\s*(.+?) is our (?:company|entity)", reading.system, re.MULTILINE)
        answer = contracts.extract(reading.user, ours.group(1).strip() if ours else "")
    elif {"verdict", "claim_issues"} <= names:
        answer = reviews.review(reading)
    if answer is None:
        return None
    valid = jsonschema.Draft202012Validator(schema).is_valid(answer)
    return answer if valid else None
