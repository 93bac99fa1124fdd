"""Settings from the environment and `.streamlit/secrets.toml`, checked before use.

The environment wins over the secrets file, so a deployment can override one value
without editing the file. Secrets are held in fields that never print.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ValidationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
SECRETS_FILE = PROJECT_ROOT / ".streamlit" / "secrets.toml"

_TRUE = {"1", "true", "yes", "on"}
# Values that ship in examples and must never guard a real deployment.
_PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "secret",
    "xxx",
    "replace-me",
    "a random string of at least 32 characters",
}  # .streamlit/secrets.toml.example's
_MIN_COOKIE_SECRET = 32
DEFAULT_JUDGE_MODEL = "gpt-4.1-mini"
_NO_JUDGE = {"off", "none", "no"}
# A cookie secret signs sessions: guessing it is signing in as anybody. A random one of 32
# characters has far more distinct characters and bits than these floors; a run of one
# letter, a repeated word or a keyboard walk has fewer. (secrets.token_hex(16), 32 hex
# digits, estimates at 91 to 120 bits and at least 9 distinct characters.)
_MIN_DISTINCT_CHARS = 8
_MIN_ESTIMATED_BITS = 80
MAKE_A_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'

# A table of a TOML file as tomllib reads it: its values are strings, numbers, booleans,
# dates, lists and nested tables, so the value type is open.
TomlTable = dict[str, Any]
_Number = TypeVar("_Number", int, float)


class ConfigError(ValidationError):
    """The configuration is unsafe or incomplete for the mode Quorum runs in."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    demo_mode: bool
    timezone: str
    auth: TomlTable = field(default_factory=dict, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    audit_signing_key: str | None = field(default=None, repr=False)
    # Public half of the signing key: lets a verifier check checkpoints without the secret.
    audit_public_key: str | None = None
    audit_checkpoint_dir: Path = DATA_DIR / "checkpoints"
    # Proxies whose X-Forwarded-For is believed; empty: the connecting address is the client.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # The upstream call: read timeout, attempts per call, and the circuit breaker's trip
    # point and cool-down (core.gateway.upstream).
    upstream_timeout_s: float = 60.0
    upstream_max_attempts: int = 3
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    # How long a budget reservation holds its room when its call never settles (the process
    # died): longer than the slowest call, or a slow call's room is given away while it runs.
    reservation_ttl_s: float = 600.0
    # Where gateway spans go; None keeps telemetry off (core.gateway.telemetry).
    otel_endpoint: str | None = None
    # The length of a rate-limit window: teams' limits are requests and tokens per window.
    rate_limit_window_s: int = 60
    # The largest request body the gateway reads (bytes): room for a long context and a few
    # base64 images, and a bound on what one request can make a server hold in memory.
    max_request_bytes: int = 50_000_000
    # The model that grades llm-rubric assertions when an experiment names none; None: no
    # default judge (such assertions are then error cells that say so).
    judge_model: str | None = DEFAULT_JUDGE_MODEL
    # Log lines: "text" (the default) or "json", one object a line for a log store (core.ops.logs).
    log_format: str = "text"
    # A bearer token /metrics asks for; None: /metrics answers anyone who can reach it.
    metrics_token: str | None = field(default=None, repr=False)
    # Add each call's team key id as a label of the call counter (more series; off by default).
    metrics_key_ids: bool = False
    # /readyz: how long an upstream answer counts as recent before readiness asks again.
    ready_upstream_s: float = 300.0
    # Finance: the provider's organization Usage and Costs APIs need an admin key, separate
    # from the key the gateway calls models with; the provider project(s) Quorum's own
    # traffic runs under (usage in any other project or key did not pass through Quorum);
    # how far a day may differ from the provider's bill and still count as matched.
    openai_admin_key: str | None = field(default=None, repr=False)
    openai_project_ids: tuple[str, ...] = ()
    reconcile_tolerance_micro: int = 10_000
    # Where the built-in simulator keeps what it answered and billed (the demo's provider).
    simulator_billing_log: Path = DATA_DIR / "simulator_billing.jsonl"
    # The team and role webhooks announce a version waiting for review longer than this
    # (hours) and a held request waiting for a decision longer than this (minutes), once each.
    review_wait_alert_h: float = 24.0
    held_wait_alert_min: float = 15.0

    @property
    def auth_configured(self) -> bool:
        """True when an OIDC provider is set up for `st.login`."""
        return bool(self.auth.get("client_id") or any(isinstance(v, dict) for v in self.auth.values()))

    @property
    def uses_simulator(self) -> bool:
        """With no OpenAI key, the built-in simulator answers every model call."""
        return not self.openai_api_key

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def check_safe(self) -> None:
        """Refuse to run outside demo mode on defaults that would be unsafe in production."""
        if self.demo_mode:
            return
        problems = []
        if not self.auth_configured:
            problems.append(
                "no [auth] section in .streamlit/secrets.toml: without OIDC sign-in anybody "
                "could pick an identity (set QUORUM_DEMO=1 only for a demo)"
            )
        else:
            problem = cookie_secret_problem(str(self.auth.get("cookie_secret", "")))
            if problem:
                problems.append(problem)
        if problems:
            raise ConfigError("Unsafe configuration: " + "; ".join(problems))


def cookie_secret_problem(cookie: str) -> str | None:
    """Why ``cookie`` cannot sign sessions (placeholder, short, predictable), or None."""
    fix = f"make one with: {MAKE_A_SECRET}"
    if cookie.strip().lower() in _PLACEHOLDER_SECRETS:
        return f"[auth] cookie_secret is a placeholder from an example; {fix}"
    if len(cookie) < _MIN_COOKIE_SECRET:
        return f"[auth] cookie_secret must be a random string of at least {_MIN_COOKIE_SECRET} characters; {fix}"
    counts = Counter(cookie)
    bits = max(0.0, -sum(n * math.log2(n / len(cookie)) for n in counts.values()))  # Shannon, whole string
    if len(counts) < _MIN_DISTINCT_CHARS or bits < _MIN_ESTIMATED_BITS:
        return (
            f"[auth] cookie_secret is too predictable ({len(counts)} distinct characters, about "
            f"{bits:.0f} bits; at least {_MIN_DISTINCT_CHARS} and {_MIN_ESTIMATED_BITS} needed); {fix}"
        )
    return None


def parse_trusted_proxies(value: str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """QUORUM_TRUSTED_PROXIES: addresses or CIDRs, separated by commas or spaces."""
    networks = []
    for item in (value or "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"QUORUM_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR range") from None
    return tuple(networks)


def _positive(name: str, value: str | None, default: _Number, kind: type[_Number]) -> _Number:
    """``value`` of setting ``name`` as a positive ``kind`` (int or float); ``default`` when unset."""
    if value is None:
        return kind(default)
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or number <= 0:
        noun = "whole number" if kind is int else "number"
        raise ConfigError(f"{name}: {value!r} is not a positive {noun}")
    return number


def _read_secrets_file(path: Path) -> TomlTable:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def default_database_url() -> str:
    return f"sqlite:///{DATA_DIR / 'quorum.db'}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings; `env` defaults to `os.environ` (tests pass their own).

    QUORUM_SECRETS_FILE points at another secrets file (default .streamlit/secrets.toml).
    """
    environment: Mapping[str, str] = os.environ if env is None else env
    secrets = _read_secrets_file(Path(environment.get("QUORUM_SECRETS_FILE") or SECRETS_FILE))

    def pick(name: str) -> str | None:
        value: object = environment.get(name)
        if value is None:
            value = secrets.get(name)
        return None if value in (None, "") else str(value)

    timezone = pick("QUORUM_TIMEZONE") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"QUORUM_TIMEZONE: unknown time zone {timezone!r}") from exc

    return Settings(
        database_url=pick("DATABASE_URL") or default_database_url(),
        demo_mode=(pick("QUORUM_DEMO") or "").lower() in _TRUE,
        timezone=timezone,
        auth=dict(secrets.get("auth", {})),
        openai_api_key=pick("OPENAI_API_KEY"),
        openai_base_url=pick("OPENAI_BASE_URL"),
        audit_signing_key=pick("QUORUM_AUDIT_SIGNING_KEY"),
        audit_public_key=pick("QUORUM_AUDIT_PUBLIC_KEY"),
        audit_checkpoint_dir=Path(pick("QUORUM_AUDIT_CHECKPOINT_DIR") or DATA_DIR / "checkpoints"),
        trusted_proxies=parse_trusted_proxies(pick("QUORUM_TRUSTED_PROXIES")),
        upstream_timeout_s=_positive("QUORUM_UPSTREAM_TIMEOUT_S", pick("QUORUM_UPSTREAM_TIMEOUT_S"), 60, float),
        upstream_max_attempts=_positive("QUORUM_UPSTREAM_MAX_ATTEMPTS", pick("QUORUM_UPSTREAM_MAX_ATTEMPTS"), 3, int),
        breaker_failures=_positive("QUORUM_BREAKER_FAILURES", pick("QUORUM_BREAKER_FAILURES"), 5, int),
        breaker_reset_s=_positive("QUORUM_BREAKER_RESET_S", pick("QUORUM_BREAKER_RESET_S"), 30, float),
        reservation_ttl_s=_positive("QUORUM_RESERVATION_TTL_S", pick("QUORUM_RESERVATION_TTL_S"), 600, float),
        otel_endpoint=pick("OTEL_EXPORTER_OTLP_ENDPOINT"),
        rate_limit_window_s=_positive("QUORUM_RATE_LIMIT_WINDOW_S", pick("QUORUM_RATE_LIMIT_WINDOW_S"), 60, int),
        max_request_bytes=_positive(
            "QUORUM_MAX_REQUEST_BYTES", pick("QUORUM_MAX_REQUEST_BYTES"), Settings.max_request_bytes, int
        ),
        judge_model=_judge_model(pick("QUORUM_JUDGE_MODEL")),
        log_format=_log_format(pick("QUORUM_LOG_FORMAT")),
        metrics_token=pick("QUORUM_METRICS_TOKEN"),
        metrics_key_ids=(pick("QUORUM_METRICS_KEY_IDS") or "").lower() in _TRUE,
        ready_upstream_s=_positive("QUORUM_READY_UPSTREAM_S", pick("QUORUM_READY_UPSTREAM_S"), 300, float),
        openai_admin_key=pick("QUORUM_OPENAI_ADMIN_KEY"),
        openai_project_ids=tuple((pick("QUORUM_OPENAI_PROJECT_IDS") or "").replace(",", " ").split()),
        reconcile_tolerance_micro=_positive(
            "QUORUM_RECONCILE_TOLERANCE_MICRO", pick("QUORUM_RECONCILE_TOLERANCE_MICRO"), 10_000, int
        ),
        simulator_billing_log=Path(pick("QUORUM_SIMULATOR_BILLING_LOG") or DATA_DIR / "simulator_billing.jsonl"),
        review_wait_alert_h=_positive("QUORUM_REVIEW_WAIT_ALERT_H", pick("QUORUM_REVIEW_WAIT_ALERT_H"), 24, float),
        held_wait_alert_min=_positive("QUORUM_HELD_WAIT_ALERT_MIN", pick("QUORUM_HELD_WAIT_ALERT_MIN"), 15, float),
    )


LOG_FORMATS = ("text", "json")


def _log_format(value: str | None) -> str:
    """QUORUM_LOG_FORMAT: text (the default) or json."""
    chosen = (value or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ConfigError(f"QUORUM_LOG_FORMAT: {value!r} is not one of {', '.join(LOG_FORMATS)}")
    return chosen


def _judge_model(value: str | None) -> str | None:
    """QUORUM_JUDGE_MODEL: a model name, unset for the default, or "off" for no default judge."""
    if value is None:
        return DEFAULT_JUDGE_MODEL
    return None if value.strip().lower() in _NO_JUDGE else value.strip()


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process's settings, read once; `reset_settings()` re-reads them (tests)."""
    return load_settings()


def reset_settings() -> None:
    settings.cache_clear()
