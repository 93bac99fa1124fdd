"""An upstream's answer written as JSON that every client can read.

A compatible server written in Python may answer ``NaN`` or ``Infinity`` (the logprob of a
token it would never sample, for one): Python's parser takes them, JSON does not allow them,
and a JavaScript client's ``JSON.parse`` fails on the whole answer. So they are passed on
(and stored, and cached) as ``null``, which OpenAI's answers use where a number is missing.
An answer without them costs nothing more: ``json.dumps`` refuses them, and only then is the
answer walked.
"""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(answer: Any) -> str:
    """`answer` as JSON text, each NaN or infinite number written as null."""
    try:
        return json.dumps(answer, allow_nan=False)
    except ValueError:  # a number JSON does not allow, somewhere
        return json.dumps(_finite(answer), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
