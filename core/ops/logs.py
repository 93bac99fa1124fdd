"""Log lines a log store can read: QUORUM_LOG_FORMAT=json writes one JSON object a line.

With json, every log record of the process goes to standard error as one object
(time, level, logger, message or event fields), and two kinds of line are added:

- one per gateway call, once its write-back is committed (`log_call`): request id, team,
  model, prompt, outcome, latency, tokens, cost;
- one per governance action, once its change is committed (core.audit.record): the audit
  event's action, actor, object and sequence number.

Neither ever holds payload text, a before/after value or a secret: the lines are built
from the call-log row and the audit event's header only. An error's line names the
exception's type and where it was raised, never its message (a provider's error message
may quote the request). Text, the default, keeps the terminal as it was: warnings and
errors, one readable line each.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

from core.ops.names import team_name
from core.settings import settings

CALL_LOGGER = "quorum.call"
AUDIT_LOGGER = "quorum.audit"
_call_log = logging.getLogger(CALL_LOGGER)
# Outcomes that are Quorum's or the provider's failure, not the caller's.
_ERRORS = frozenset({"error", "upstream_error", "moderation_unavailable"})
_MARK = "_quorum_json_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; a record's `quorum` extra supplies its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "quorum", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["stack"] = "".join(traceback.format_tb(record.exc_info[2])).strip()
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(log_format: str | None = None, *, stream: TextIO | None = None) -> None:
    """Set up the process's logging for QUORUM_LOG_FORMAT (idempotent; text leaves it alone)."""
    chosen = log_format or settings().log_format
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
    if chosen != "json":
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)
    for name in (CALL_LOGGER, AUDIT_LOGGER):
        logging.getLogger(name).setLevel(logging.INFO)


def uses_json() -> bool:
    return any(getattr(h, _MARK, False) for h in logging.getLogger().handlers)


def log_call(row: dict[str, Any]) -> None:
    """The line of one settled call (nothing unless the call logger is on: json)."""
    if not _call_log.isEnabledFor(logging.INFO):
        return
    try:
        status = row["status"]
        fields = {
            "event": "gateway.call",
            "request_id": row["request_id"],
            "team": team_name(row["team_id"]),
            "team_id": row["team_id"],
            "key_id": row["key_id"],
            "actor": row["actor"],
            "endpoint": row["endpoint"],
            "model": row["model"],
            "prompt": row["prompt_name"],
            "prompt_version": row["prompt_version"],
            "outcome": status,
            "http_status": row["http_status"],
            "rule": row["rule"],
            "stream": row["stream"],
            "cache_hit": row["cache_hit"],
            "attempts": row["attempts"],
            "latency_ms": row["latency_ms"],
            "upstream_ms": row["upstream_ms"],
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cost_micro": row["cost_micro"],
        }
        level = logging.ERROR if status in _ERRORS else logging.INFO
        _call_log.log(level, "gateway.call", extra={"quorum": fields})
    except Exception:  # noqa: BLE001 - a log line is not worth a failed answer
        logging.getLogger(__name__).exception("could not log a gateway call")
