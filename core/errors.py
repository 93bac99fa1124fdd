"""The errors every caller of ``core`` can expect, each with a message fit to show a user.

Pages show ``str(error)`` as it is; the command line prints it on one line and exits
non-zero; the HTTP gateway maps each class to a status code.
"""

from __future__ import annotations

from datetime import datetime


class QuorumError(Exception):
    """Base class: a refusal or failure that the user should read."""


class ValidationError(QuorumError):
    """The input is malformed or incomplete (an empty name, an unknown role...)."""


class NotFound(QuorumError):
    """The thing asked for does not exist."""


class Conflict(QuorumError):
    """The change would clash with what is stored (a duplicate e-mail, a stale version)."""


class Unauthenticated(QuorumError):
    """No key, an unknown key, or a revoked, expired or out-of-range one (HTTP 401)."""


class PermissionDenied(QuorumError):
    """The acting identity may not do this."""


class InvalidTransition(QuorumError):
    """A workflow step that is not allowed from the current state."""


class BudgetExceeded(QuorumError):
    """The spend would take a budget past what is left (the HTTP gateway answers 429).

    Raised by a budget reservation (one call's worst case does not fit) and by an
    experiment's estimate (all its calls' worst case does not fit). ``resets_at``: when
    waiting could change the answer (the period's end), or None when it cannot (a
    per-request cap, an experiment's budget)."""

    def __init__(self, message: str, *, resets_at: datetime | None = None) -> None:
        super().__init__(message)
        self.resets_at = resets_at
