"""Answers checked against their prompt version's JSON schema, counted per hour for the drift
detector of the schema failure rate (core.anomalies.schema_drift).

An application's call (with a team key) through a catalog prompt version whose response
format is a ``json_schema`` gets the version's compiled check when the prompt is resolved
(`attach`: compiled once per version, the fast subset of core.catalog.answer_schema where
it applies, else ``jsonschema``);
the settle reads the answer against it (`outcome`) and the write-back adds the call to the
(hour, team, prompt, version, model) row of `schema_check_rollup` (`write_schema_checks`).
A stream the client left before its end is not counted: half an answer is not a failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import jsonschema
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.catalog.answer_schema import compile_subset
from core.catalog.escalation import response_schema_of
from core.catalog.spec import VersionSpec
from core.db import table_of
from core.gateway.call_state import CallState
from core.models.anomalies import SchemaCheckRollup

TABLE = table_of(SchemaCheckRollup)
Check = Callable[[Any], bool]
_STREAMED = ("chat.completion.stream", "response.stream")
_MAX_COMPILED = 1024
_compiled: dict[int, tuple[Mapping[str, Any], Check]] = {}


def compiled_check(version_id: int | None, response_format: Mapping[str, Any] | None) -> Check | None:
    """The version's answer check, compiled once per version; None without a json_schema format.

    A hit is compared with the schema as written, so a reused id (a reset database) compiles
    again instead of lying."""
    schema = response_schema_of(response_format)
    if schema is None or version_id is None:
        return None
    found = _compiled.get(version_id)
    if found is not None and (found[0] is schema or found[0] == schema):
        return found[1]
    check = compile_subset(schema)
    if check is None:
        try:
            check = jsonschema.Draft202012Validator(dict(schema)).is_valid
        except jsonschema.SchemaError:
            return None  # the catalog refuses such a schema; one saved before it did checks nothing
    if len(_compiled) >= _MAX_COMPILED:
        _compiled.clear()
    _compiled[version_id] = (schema, check)
    return check


def attach(call: CallState, spec: VersionSpec) -> None:
    # Applications' calls only: a draft tried in the playground or an A/B run is no change
    # of what the prompt answers in production, and must not read as one.
    if call.caller.key_id is not None:
        call.answer_check = compiled_check(call.prompt_version_id, spec.params.response_format)


def answer_text(kind: str, response: Mapping[str, Any]) -> str | None:
    """The answer's text as the schema applies to it; None for an unfinished stream."""
    if response.get("object") in _STREAMED:
        return str(response.get("content") or "") if response.get("complete") else None
    if kind == "responses":
        return "".join(
            part.get("text") or ""
            for item in response.get("output") or ()
            if item.get("type") == "message"
            for part in item.get("content") or ()
            if part.get("type") == "output_text"
        )
    choices = response.get("choices") or ()
    return str(((choices[0] if choices else {}).get("message") or {}).get("content") or "")


def validity(call: CallState, response: Mapping[str, Any] | None) -> bool | None:
    """Whether the answer meets the version's schema; None when there is nothing to check."""
    check = call.answer_check
    if check is None or response is None:
        return None
    text = answer_text(call.kind, response)
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return bool(check(parsed))


def note(call: CallState, response: Mapping[str, Any]) -> None:
    """Check an answer that will not reach the settle (one an escalation rule blocks)."""
    call.answer_valid = validity(call, response)


def outcome(call: CallState, response: Mapping[str, Any] | None) -> bool | None:
    return call.answer_valid if call.answer_valid is not None else validity(call, response)


def check_rows(calls: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per (hour, team, prompt, version, model) of the batch, in key order."""
    groups: dict[tuple[datetime, int, str, str, str], list[int]] = {}
    for call in calls:
        if call.schema_valid is None:
            continue
        row = call.row
        hour = row["created_at"].replace(minute=0, second=0, microsecond=0)
        key = (hour, row["team_id"], row["prompt_name"] or "", row["prompt_version"] or "", row["model"])
        counts = groups.setdefault(key, [0, 0])
        counts[0] += 1
        counts[1] += 0 if call.schema_valid else 1
    return [
        {
            "hour": hour,
            "team_id": team,
            "prompt_name": prompt,
            "prompt_version": version,
            "model": model,
            "checked": checked,
            "failed": failed,
        }
        for (hour, team, prompt, version, model), (checked, failed) in sorted(groups.items())
    ]


_UPSERTS: dict[str, Any] = {}


def _upsert(dialect: str) -> Any:
    statement = _UPSERTS.get(dialect)
    if statement is None:
        insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(TABLE)
        c = TABLE.c
        statement = insert.on_conflict_do_update(
            index_elements=[c.hour, c.team_id, c.prompt_name, c.prompt_version, c.model],
            set_={"checked": c.checked + insert.excluded.checked, "failed": c.failed + insert.excluded.failed},
        )
        _UPSERTS[dialect] = statement
    return statement


def write_schema_checks(session: Session, calls: Sequence[Any]) -> None:
    rows = check_rows(calls)
    if rows:
        connection = session.connection()
        connection.execute(_upsert(connection.dialect.name), rows[0] if len(rows) == 1 else rows)
