"""A team's rate limits as stored in its gateway policy, and the checks on new values.

Requests and tokens per window (a minute unless ``QUORUM_RATE_LIMIT_WINDOW_S`` says
otherwise) for each of three scopes: every key of the team on its own, the whole team,
and every person of the team on their own (playground and A/B runs). A limit left unset
does not apply. Stored in the team's policy JSON as
``{"rate_limits": {"key": {"requests": 60, "tokens": 40000}, "team": {...}, "person": {...}}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import ValidationError

SCOPES = ("team", "key", "person")  # also the order every admission locks its rows in
MEASURES = ("requests", "tokens")
SCOPE_LABELS = {"key": "each key", "team": "the whole team", "person": "each person"}
# Far above any real limit; a bigger number is a typo, and would overflow the counters.
MAX_LIMIT = 10**12


@dataclass(frozen=True)
class ScopeLimit:
    requests: int | None = None
    tokens: int | None = None

    @property
    def empty(self) -> bool:
        return self.requests is None and self.tokens is None


@dataclass(frozen=True)
class RateLimits:
    key: ScopeLimit = ScopeLimit()
    team: ScopeLimit = ScopeLimit()
    person: ScopeLimit = ScopeLimit()

    @property
    def empty(self) -> bool:
        return self.key.empty and self.team.empty and self.person.empty

    def of(self, scope: str) -> ScopeLimit:
        return getattr(self, scope)

    def as_dict(self) -> dict[str, dict[str, int]]:
        """The stored form: unset limits and scopes are left out."""
        stored: dict[str, dict[str, int]] = {}
        for scope in SCOPES:
            limit = self.of(scope)
            values = {m: getattr(limit, m) for m in MEASURES if getattr(limit, m) is not None}
            if values:
                stored[scope] = values
        return stored

    @classmethod
    def from_stored(cls, stored: Any) -> RateLimits:
        """What the policy holds (already checked when it was saved); nothing stored: no limits."""
        if not isinstance(stored, dict):
            return cls()
        return cls(
            **{
                scope: ScopeLimit(**{m: v for m, v in (stored.get(scope) or {}).items() if m in MEASURES})
                for scope in SCOPES
            }
        )


def parse_limits(given: Any) -> RateLimits:
    """New limits from an admin: ``{scope: {measure: whole number > 0 or None}}``; raise a
    ValidationError naming the first bad value."""
    if not isinstance(given, dict):
        raise ValidationError("Rate limits must be given per scope (key, team, person).")
    unknown = sorted(set(given) - set(SCOPES))
    if unknown:
        raise ValidationError(f"Unknown rate-limit scope {unknown[0]!r}; the scopes are key, team and person.")
    scopes: dict[str, ScopeLimit] = {}
    for scope in SCOPES:
        values = given.get(scope) or {}
        if not isinstance(values, dict):
            raise ValidationError(f"Rate limits of {SCOPE_LABELS[scope]} must name requests and/or tokens.")
        unknown = sorted(set(values) - set(MEASURES))
        if unknown:
            raise ValidationError(f"Unknown rate-limit measure {unknown[0]!r}; the measures are requests and tokens.")
        checked = {m: _checked(scope, m, values.get(m)) for m in MEASURES}
        scopes[scope] = ScopeLimit(**checked)
    return RateLimits(**scopes)


def _checked(scope: str, measure: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    what = f"The {measure} limit of {SCOPE_LABELS[scope]}"
    if isinstance(value, str):
        try:
            value = int(value.strip().replace(",", "").replace("_", ""))
        except ValueError:
            raise ValidationError(f"{what} must be a whole number, not {value!r}.") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be a whole number, not {value!r}.")
    if value <= 0:
        raise ValidationError(f"{what} must be at least 1 per window (leave it empty for no limit), not {value}.")
    if value > MAX_LIMIT:
        raise ValidationError(f"{what} must be at most {MAX_LIMIT:,}, not {value:,}.")
    return value
