"""Readiness (`/readyz`): whether this process should be sent traffic now.

Liveness (`/healthz`) says the process answers; readiness says it can do its job, so a load
balancer takes it out of rotation while it cannot. Each check is named in the answer:

- ``database``: a connection answers ``SELECT 1``;
- ``migrations``: the schema is at the newest revision this code knows (a process started
  before a deploy's migration, or a database restored from an older backup, is not ready);
- ``upstream``: the model provider answered within QUORUM_READY_UPSTREAM_S (a call, or the
  start-up probe); when it has been quiet longer, readiness asks it once more itself, and a
  circuit breaker that is open means it did not answer;
- ``audit_signing_key``: outside demo mode checkpoints must be signed, so the key must be
  set and readable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import text

from core import db, migrate
from core.audit import checkpoints as audit_checkpoints
from core.settings import ConfigError, settings

_answered_at: float | None = None
_probe_lock = threading.Lock()


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Readiness:
    checks: list[Check]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_json(self) -> dict[str, object]:
        return {
            "status": "ready" if self.ready else "not ready",
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


def upstream_answered() -> None:
    """The upstream just answered (a call reached it, or a probe did)."""
    global _answered_at
    _answered_at = time.monotonic()


def forget_upstream() -> None:
    """As if the upstream never answered (tests)."""
    global _answered_at
    _answered_at = None


def check(*, upstream: object, probe: Callable[[], bool]) -> Readiness:
    """Every check, in order. ``probe`` asks the upstream once and says whether it answered."""
    return Readiness([_database(), _migrations(), _upstream(upstream, probe), _signing_key()])


def _database() -> Check:
    try:
        with db.get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure to reach it is the finding
        return Check("database", False, f"cannot reach the database ({type(error).__name__})")
    return Check("database", True, "answers")


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def _migrations() -> Check:
    try:
        current = migrate.current_revision()
    except Exception as error:  # noqa: BLE001
        return Check("migrations", False, f"cannot read the schema revision ({type(error).__name__})")
    head = head_revision()
    if current != head:
        return Check("migrations", False, f"the schema is at {current or 'nothing'}, this code needs {head}")
    return Check("migrations", True, f"at {head}")


def _upstream(upstream: object, probe: Callable[[], bool]) -> Check:
    if getattr(upstream, "simulated", False):
        return Check("upstream", True, "the built-in simulator (in this process)")
    breaker = getattr(upstream, "breaker", None)
    if getattr(breaker, "state", "closed") == "open":
        return Check("upstream", False, "the circuit breaker is open: the provider failed repeatedly")
    window = settings().ready_upstream_s
    if _answered_at is None or time.monotonic() - _answered_at > window:
        # One probe at a time: a load balancer asking every second must not become a flood.
        with _probe_lock:
            if _answered_at is None or time.monotonic() - _answered_at > window:
                try:
                    answered = probe()
                except Exception:  # noqa: BLE001 - a failed probe is "did not answer"
                    answered = False
                if answered:
                    upstream_answered()
    if _answered_at is None or time.monotonic() - _answered_at > window:
        return Check("upstream", False, f"the provider has not answered in the last {window:g} s")
    return Check("upstream", True, f"answered {time.monotonic() - _answered_at:.0f} s ago")


def _signing_key() -> Check:
    try:
        key = audit_checkpoints.signing_key()
    except ConfigError as error:
        return Check("audit_signing_key", False, str(error))
    if key is not None:
        return Check("audit_signing_key", True, "set")
    if settings().demo_mode:
        return Check("audit_signing_key", True, "not set (not required in demo mode)")
    return Check("audit_signing_key", False, "QUORUM_AUDIT_SIGNING_KEY is not set: checkpoints would go unsigned")
