"""Rate limits at admission: requests and tokens per window, per key, team and person.

Every gateway process shares one fixed window per subject in the database
(``rate_limit_window``, one row per key, team or person and window). A call is counted in
the budget admission's write transaction (``along``; in one of its own when the gate does
not take it, ``confirm``), with one conditional upsert of a row per limited scope::

    INSERT ... VALUES (team row), (key row) ON CONFLICT DO UPDATE
        SET requests = requests + 1, tokens = tokens + n
        WHERE requests + 1 <= the row's requests limit AND tokens + n <= its tokens limit
        RETURNING scope, requests, tokens

A scope missing from the rows returned has reached its limit: the transaction is rolled
back, so nothing is counted in any scope (nor is the budget held). The statement is atomic
on PostgreSQL (each row locked, its condition re-checked on the newest version) and on
SQLite (one writer), so the limit is exact across processes and servers. The rows are
always in the same order (team, key, person), so two admissions never wait on each other
in a cycle.

Tokens are counted at admission, as OpenAI counts them: the input's upper bound plus the
output limit asked for (``max_tokens``, or the gateway's default when none is set); they
are not corrected at settle, so a limit bounds the worst case and a call costs no second
write on these rows. A team without limits costs nothing here: its limits come from the
cached policy and no statement runs.

The x-ratelimit-* headers of the answer report the tightest scope, for requests and
tokens separately; the HTTP layer collects them with ``headers_into``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, TextClause, bindparam, delete, select, text

from core import clock, db
from core.budgets.tokens import DEFAULT_MAX_OUTPUT_TOKENS
from core.gateway.call_state import Caller, CallState
from core.gateway.errors import RateLimited
from core.gateway.ports import AdmissionRead, BudgetRequest
from core.gateway.rate_limit_rules import MEASURES, SCOPES, ScopeLimit
from core.models.gateway import RateLimitWindow
from core.settings import settings

WINDOWS = RateLimitWindow.__table__
# Old windows are deleted, by the admissions themselves, at most this often per process.
SWEEP_EVERY_S = 60.0
KEEP_WINDOWS_S = 3600


def _upsert(scopes: int) -> TextClause:
    """One statement for all of a call's scopes: a row each, carrying its limits, so that the
    condition of each row reads its own; the rows returned are the scopes that admitted.

    Written as SQL (the same on SQLite and PostgreSQL): SQLAlchemy compiles a multi-row
    INSERT anew on every execution, which cost more than the statement itself."""
    rows = ", ".join(
        f"(:scope_{i}, :team_{i}, :subject_{i}, :start_{i}, 1, :tokens_{i}, :requests_limit_{i}, :tokens_limit_{i})"
        for i in range(scopes)
    )
    return text(
        "INSERT INTO rate_limit_window "
        "(scope, team_id, subject_id, window_start, requests, tokens, requests_limit, tokens_limit) "
        f"VALUES {rows} "
        "ON CONFLICT (scope, team_id, subject_id, window_start) DO UPDATE SET "
        "requests = rate_limit_window.requests + 1, tokens = rate_limit_window.tokens + excluded.tokens, "
        "requests_limit = excluded.requests_limit, tokens_limit = excluded.tokens_limit "
        "WHERE (excluded.requests_limit IS NULL OR rate_limit_window.requests + 1 <= excluded.requests_limit) "
        "AND (excluded.tokens_limit IS NULL OR rate_limit_window.tokens + excluded.tokens <= excluded.tokens_limit) "
        "RETURNING scope, requests, tokens"
    )


# By the number of scopes (1 to 3), built once.
_UPSERTS = {n: _upsert(n) for n in range(1, len(SCOPES) + 1)}
_USED = select(WINDOWS.c.requests, WINDOWS.c.tokens).where(
    WINDOWS.c.scope == bindparam("scope"),
    WINDOWS.c.team_id == bindparam("team_id"),
    WINDOWS.c.subject_id == bindparam("subject_id"),
    WINDOWS.c.window_start == bindparam("window_start", type_=BigInteger),
)
_SWEEP = delete(WINDOWS).where(WINDOWS.c.window_start < bindparam("before", type_=BigInteger))
_last_sweep = 0.0
_sweep_lock = threading.Lock()


@dataclass(frozen=True)
class ScopeUse:
    """One limited scope after this call: what its window holds, this call included."""

    scope: str
    limit: ScopeLimit
    requests: int
    tokens: int


@dataclass(frozen=True)
class Admission:
    uses: tuple[ScopeUse, ...]
    reset_s: float  # until the window ends and every count starts again from 0

    def headers(self) -> dict[str, str]:
        return rate_limit_headers(self.uses, self.reset_s)


def rate_limit_headers(uses: tuple[ScopeUse, ...] | list[ScopeUse], reset_s: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}, from the tightest scope."""
    headers: dict[str, str] = {}
    for measure in MEASURES:
        limited = [
            (getattr(u.limit, measure) - getattr(u, measure), getattr(u.limit, measure))
            for u in uses
            if getattr(u.limit, measure) is not None
        ]
        if not limited:
            continue
        remaining, limit = min(limited)
        headers[f"x-ratelimit-limit-{measure}"] = str(limit)
        headers[f"x-ratelimit-remaining-{measure}"] = str(max(0, remaining))
        headers[f"x-ratelimit-reset-{measure}"] = duration(reset_s)
    return headers


def duration(seconds: float) -> str:
    """A span in OpenAI's (Go's) format: "20ms", "1s", "8.64s", "6m0s", "1h0m0s"."""
    seconds = round(max(0.0, seconds), 3)
    if seconds < 1:
        milliseconds = round(seconds * 1000)
        return f"{milliseconds}ms" if milliseconds else "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


# ---- where the HTTP layer picks the headers up -------------------------------------------------

_sink: ContextVar[dict[str, str] | None] = ContextVar("quorum_rate_limit_headers", default=None)


@contextmanager
def headers_into(target: dict[str, str]) -> Iterator[dict[str, str]]:
    """Calls admitted inside this block put their x-ratelimit-* headers into ``target``, whether
    the call then answers, streams or is refused further on."""
    token = _sink.set(target)
    try:
        yield target
    finally:
        _sink.reset(token)


def _report(headers: dict[str, str]) -> None:
    target = _sink.get()
    if target is not None:
        target.update(headers)


# ---- admission ------------------------------------------------------------------------------


def admission_tokens(request: BudgetRequest) -> int:
    """The tokens a call counts: its input's upper bound and the output it may produce."""
    if request.kind in ("embeddings", "moderations"):
        return request.input_tokens_upper_bound
    return request.input_tokens_upper_bound + (request.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS)


def subject_of(caller: Caller, scope: str) -> int | None:
    """Whose window a scope counts in: a key's calls count for the key and the team, a
    person's (playground, A/B runs) for the person (within the team) and the team."""
    if scope == "team":
        return caller.team_id
    if scope == "key":
        return caller.key_id
    return caller.actor.person_id if caller.key_id is None else None


def window_start(now_s: float, window_s: int) -> int:
    return int(now_s // window_s) * window_s


@dataclass
class RateCount:
    """One call's count in its limited scopes, made inside the budget admission's transaction
    (the gate calls it before its commit: one write transaction per call, not two), or in a
    transaction of its own by ``confirm`` when the gate did not make it."""

    model: str
    team_id: int
    subjects: list[tuple[str, int, ScopeLimit]]
    tokens: int
    window_s: int
    start: int
    reset_s: float
    admission: Admission | None = None  # set once counted; the transaction commits it, or not

    def __call__(self, connection: Connection) -> None:
        """Count the call in every scope, or raise RateLimited (the caller rolls back: none counted)."""
        _sweep_if_due(connection, self.start)
        params: dict[str, object] = {}
        for i, (scope, subject, limit) in enumerate(self.subjects):
            params |= {
                f"scope_{i}": scope,
                f"team_{i}": self.team_id,
                f"subject_{i}": subject,
                f"start_{i}": self.start,
                f"tokens_{i}": self.tokens,
                f"requests_limit_{i}": limit.requests,
                f"tokens_limit_{i}": limit.tokens,
            }
        upsert = _UPSERTS[len(self.subjects)]
        counted = {row.scope: row for row in connection.execute(upsert, params)}
        uses: list[ScopeUse] = []
        for scope, subject, limit in self.subjects:
            row = counted.get(scope)
            if row is None:  # this scope's limit is reached; the caller rolls the others back
                where = {"scope": scope, "team_id": self.team_id, "subject_id": subject, "window_start": self.start}
                used = connection.execute(_USED, where).first()
                full = ScopeUse(scope, limit, used.requests if used else 0, used.tokens if used else 0)
                raise _reached(self.model, full, [*uses, full], self.tokens, self.reset_s, self.window_s)
            uses.append(ScopeUse(scope, limit, row.requests, row.tokens))
        self.admission = Admission(tuple(uses), self.reset_s)


def prepare(call: CallState, request: BudgetRequest) -> RateCount | None:
    """The call's count, to make at admission; None when no limit applies to this caller.

    Raises RateLimited at once for a call above a whole token limit (no window can take it)."""
    limits = call.gateway_settings.rate_limits
    subjects = [
        (scope, subject, limits.of(scope))
        for scope in SCOPES
        if not limits.of(scope).empty and (subject := subject_of(call.caller, scope)) is not None
    ]
    if not subjects:
        return None
    window = settings().rate_limit_window_s
    now = clock.now().timestamp()
    start = window_start(now, window)
    tokens = admission_tokens(request)
    for scope, _subject, limit in subjects:
        if limit.tokens is not None and tokens > limit.tokens:
            raise _too_large(call.model, scope, limit.tokens, tokens, window)
    return RateCount(call.model, call.caller.team_id, subjects, tokens, window, start, start + window - now)


def along(count: RateCount | None, read: AdmissionRead | None) -> AdmissionRead | None:
    """The budget admission's in-transaction work: the count first, then ``read`` (the cache lookup)."""
    if count is None:
        return read

    def both(connection: Connection, granted_max_tokens: int | None) -> None:
        count(connection)
        if read is not None:
            read(connection, granted_max_tokens)

    return both


def confirm(count: RateCount | None) -> Admission | None:
    """After the budget admission committed: count now if the gate did not, and report the
    x-ratelimit-* headers."""
    if count is None:
        return None
    if count.admission is None:
        with db.get_engine().connect() as connection:
            connection.execution_options(quorum_write=True)  # SQLite: BEGIN IMMEDIATE, queue for the lock
            with connection.begin():
                count(connection)
    assert count.admission is not None
    _report(count.admission.headers())
    return count.admission


def admit(call: CallState, request: BudgetRequest) -> Admission | None:
    """Count the call in a transaction of its own (callers without a budget admission)."""
    return confirm(prepare(call, request))


def _sweep_if_due(connection: Connection, start: int) -> None:
    global _last_sweep
    now = time.monotonic()
    with _sweep_lock:
        if now - _last_sweep < SWEEP_EVERY_S:
            return
        _last_sweep = now
    connection.execute(_SWEEP, {"before": start - KEEP_WINDOWS_S})


# ---- refusals, in OpenAI's words -----------------------------------------------------------

_WHOSE = {"key": "for this key", "team": "for the team", "person": "for you"}


def _per(measure: str, window: int) -> str:
    short = "RPM" if measure == "requests" else "TPM"
    return f"{measure} per min ({short})" if window == 60 else f"{measure} per {window}s window"


def _reached(model: str, full: ScopeUse, uses: list[ScopeUse], tokens: int, reset_s: float, window: int) -> RateLimited:
    over_requests = full.limit.requests is not None and full.requests + 1 > full.limit.requests
    measure = "requests" if over_requests else "tokens"
    limit = full.limit.requests if over_requests else full.limit.tokens
    used, asked = (full.requests, 1) if over_requests else (full.tokens, tokens)
    message = (
        f"Rate limit reached for {model} {_WHOSE[full.scope]} on {_per(measure, window)}: "
        f"Limit {limit}, Used {used}, Requested {asked}. Please try again in {duration(reset_s)}."
    )
    headers = rate_limit_headers(uses, reset_s)
    _report(headers)
    return RateLimited(message, measure=measure, retry_after_s=reset_s, headers=headers)


def _too_large(model: str, scope: str, limit: int, tokens: int, window: int) -> RateLimited:
    message = (
        f"Request too large for {model} {_WHOSE[scope]} on {_per('tokens', window)}: Limit {limit}, "
        f"Requested {tokens}. The input or output tokens must be reduced in order to run successfully "
        "(the output counts at its max_tokens)."
    )
    return RateLimited(message, measure="tokens", retry_after_s=None, headers={})
