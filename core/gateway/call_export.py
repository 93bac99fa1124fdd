"""The gateway's call log as a file: one row per call in a time range, whatever its outcome
(status, HTTP status, rule, cache, tokens, cost, latency), for an operator's own analysis.

Streams like every export (core.exports): the database builds each line, in constant memory.
Callers stay references (person:12, key ids), as in the log itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session

from core import clock
from core.errors import ValidationError
from core.exports import Export, table_export, utc_text
from core.models.gateway import GatewayCall
from core.models.identity import Team
from core.models.keys import ApiKey
from core.permissions import Actor, Permission, require

_C = GatewayCall.__table__.c
_TEAM = Team.__table__.alias("t")
_KEY = ApiKey.__table__.alias("k")


def prepare(
    *,
    session: Session,
    actor: Actor,
    since: datetime | None = None,
    until: datetime | None = None,
    days: int | None = None,
    team_ids: Sequence[int] = (),
    models: Sequence[str] = (),
    prompts: Sequence[str] = (),
    fmt: str = "csv",
) -> Export:
    """Every call in [since, until) (or of the last `days`), oldest first; empty filters mean
    all, as on the Observability page."""
    require(actor, Permission.OBSERVABILITY_READ)
    if days is not None:
        since = clock.now() - timedelta(days=days)
    if since is not None and until is not None and since >= until:
        raise ValidationError("The time range is empty: 'since' must be before 'until'")
    dialect = session.get_bind().dialect.name
    columns = {
        "created_at": utc_text(_C.created_at, dialect),
        "request_id": _C.request_id,
        "team": _TEAM.c.name,
        "key_id": _C.key_id,
        "key": _KEY.c.label,  # the team key's name: a reader tells keys apart by it
        "actor": _C.actor,
        "endpoint": _C.endpoint,
        "model": _C.model,
        "prompt": _C.prompt_name,
        "prompt_version": _C.prompt_version,
        "status": _C.status,
        "http_status": _C.http_status,
        "rule": _C.rule,
        "stream": _C.stream,
        "cache_hit": _C.cache_hit,
        "attempts": _C.attempts,
        "input_tokens": _C.input_tokens,
        "output_tokens": _C.output_tokens,
        "usage_estimated": _C.usage_estimated,
        "cost_micro": _C.cost_micro,
        "latency_ms": _C.latency_ms,
        "upstream_ms": _C.upstream_ms,
    }
    where = []
    if since is not None:
        where.append(_C.created_at >= since)
    if until is not None:
        where.append(_C.created_at < until)
    if team_ids:
        where.append(_C.team_id.in_(list(team_ids)))
    if models:
        where.append(_C.model.in_(list(models)))
    if prompts:
        where.append(_C.prompt_name.in_(list(prompts)))
    return table_export(
        session,
        columns=columns,
        source=GatewayCall.__table__.outerjoin(_TEAM, _TEAM.c.id == _C.team_id).outerjoin(_KEY, _KEY.c.id == _C.key_id),
        where=where,
        order_by=(_C.created_at, _C.id),
        fmt=fmt,
        file_name=f"calls-{clock.now():%Y%m%dT%H%M%SZ}.{fmt}",
        check=lambda: require(actor, Permission.OBSERVABILITY_READ),
    )
