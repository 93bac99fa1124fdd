"""Subject erasure: delete or anonymize a subject's content, keeping every record a legal hold
covers (any dimension: team, person, prompt, time range) and saying how many per hold;
refused outright while a hold names the person.

Audit events keep the stable pseudonymous actor id (person:12): the chain is never edited,
and after erasure that id points at an anonymized person row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, String, Text, text
from sqlmodel import Session, SQLModel

from core.audit.record import committing, record
from core.catalog import approvals
from core.db import changed_rows, saved_id
from core.errors import Conflict
from core.models.retention import SubjectRequest
from core.permissions import Actor, Permission, require
from core.retention import kinds as registry
from core.retention.holds import active_holds, held_by, holds_on_person, typed
from core.retention.mentions import may_mention, mentions, scrub, token_pattern
from core.retention.subjects import chunks, find_subject, subject_request_ids

ERASED = "[erased]"
# Tables whose rows are deleted when they mention the subject (their text is the payload itself).
CONTENT_TABLES = ("stored_payload", "gateway_cache_entry")
# Never rewritten: the chain (people appear there only as ids) and the person row (anonymized below).
UNTOUCHED_TABLES = ("audit_event", "audit_head", "audit_checkpoint", "alembic_version", "person")


@dataclass
class ErasureResult:
    subject: str
    counts: dict[str, int] = field(default_factory=dict)
    # "<case name> (hold <id>)" -> record kind -> records of the subject kept for that hold.
    kept: dict[str, dict[str, int]] = field(default_factory=dict)

    def kept_lines(self) -> list[str]:
        return [
            f"kept under legal hold {case}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(by_kind.items()))
            for case, by_kind in self.kept.items()
        ]


class _Kept:
    """Which of the subject's records each active hold keeps, by record kind (ids, so none counts twice)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.holds = active_holds(session)
        self.ids: dict[int, dict[str, set[Any]]] = {}

    def unheld(self, kind: registry.RecordKind, ids: list[Any]) -> list[Any]:
        """The ids of `ids` that no hold covers; the held ones are noted per hold."""
        if not self.holds or not ids:
            return list(ids)
        held: set[Any] = set()
        for n, hold in enumerate(self.holds):
            condition = held_by(kind, hold, n)
            for chunk in chunks(sorted(ids), 500):
                statement = typed(
                    f"SELECT {kind.id_column} FROM {kind.table} WHERE {kind.id_column} IN :ids AND {condition.sql}",
                    condition.params,
                ).bindparams(_expanding("ids"))
                found = {row[0] for row in self.session.execute(statement, {**condition.params, "ids": chunk})}
                if found:
                    self.ids.setdefault(saved_id(hold), {}).setdefault(kind.key, set()).update(found)
                    held |= found
        return [i for i in ids if i not in held]

    def report(self) -> dict[str, dict[str, int]]:
        names = {h.id: h.case_name for h in self.holds}
        return {
            f"{names[hold_id]} (hold {hold_id})": {kind: len(ids) for kind, ids in by_kind.items()}
            for hold_id, by_kind in sorted(self.ids.items())
        }


def erase(*, session: Session, actor: Actor, email: str | None = None, end_user: str | None = None) -> ErasureResult:
    """Delete or anonymize the subject's content, keeping what any legal hold covers (counted per
    hold in `kept`); refused while a hold names the person or the person is part of an open review."""
    require(actor, Permission.RETENTION_MANAGE)
    subject = find_subject(session, email=email, end_user=end_user)
    if subject.person is not None:
        holds = holds_on_person(session, saved_id(subject.person))
        if holds:
            raise Conflict(
                "This person's records are under legal hold ("
                + ", ".join(h.case_name for h in holds)
                + "); release the hold before erasing"
            )
        # Once erased, a person created again with the same e-mail is someone new to Quorum:
        # while a review is open, that would let one person count as author and approver.
        open_reviews = approvals.open_reviews_involving(session, subject.ref, saved_id(subject.person))
        if open_reviews:
            raise Conflict(
                f"This person wrote or approved versions still in review ({', '.join(open_reviews)}); "
                "decide those reviews before erasing the person"
            )
    result = ErasureResult(subject.ref)
    counts = result.counts
    kept = _Kept(session)
    request_ids = sorted(subject_request_ids(session, subject))
    with committing(session):
        payloads = kept.unheld(registry.kind("stored_payload"), request_ids)
        for chunk in chunks(payloads, 500):
            counts["stored_payloads_deleted"] = counts.get("stored_payloads_deleted", 0) + changed_rows(
                session.execute(
                    text("DELETE FROM stored_payload WHERE request_id IN :ids").bindparams(_expanding("ids")),
                    {"ids": chunk},
                )
            )
        held_kind = registry.kind("held_request")
        held_ids = [
            row[0]
            for chunk in chunks(request_ids, 500)
            for row in session.execute(
                text("SELECT id FROM held_request WHERE request_id IN :ids").bindparams(_expanding("ids")),
                {"ids": chunk},
            )
        ]
        for chunk in chunks(kept.unheld(held_kind, held_ids), 500):
            counts["held_answers_cleared"] = counts.get("held_answers_cleared", 0) + changed_rows(
                session.execute(
                    text("UPDATE held_request SET response_json = NULL, comment = '' WHERE id IN :ids").bindparams(
                        _expanding("ids")
                    ),
                    {"ids": chunk},
                )
            )
        if subject.person is not None:
            person = subject.person
            _scrub_everywhere(session, subject.needles, counts, kept)
            person.email = f"erased-{person.id}@erased.invalid"
            person.display_name = f"Erased person {person.id}"
            person.active = False
            session.add(person)
            counts["roles_removed"] = changed_rows(
                session.execute(text("DELETE FROM role_grant WHERE person_id = :p"), {"p": person.id})
            )
            counts["memberships_removed"] = changed_rows(
                session.execute(text("DELETE FROM membership WHERE person_id = :p"), {"p": person.id})
            )
        session.add(
            SubjectRequest(
                kind="erasure",
                subject_ref=subject.ref,
                actor=actor.ref,
                summary_json=json.dumps(counts, sort_keys=True),
            )
        )
        session.flush()
        result.kept = kept.report()
        # Hold ids, not case names: a case name may name a person.
        record(
            session,
            actor=actor,
            action="privacy.erase",
            target_type="data_subject",
            target_id=subject.ref,
            after={
                "counts": counts,
                "kept_under_hold": {
                    str(hold_id): {k: len(v) for k, v in by_kind.items()}
                    for hold_id, by_kind in sorted(kept.ids.items())
                },
            },
        )
    return result


def _expanding(name: str) -> BindParameter[Any]:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)


def _scrub_everywhere(session: Session, needles: list[str], counts: dict[str, int], kept: _Kept) -> None:
    """Every text column of every table: rows of content tables that mention the subject are
    deleted; elsewhere each mention is replaced by "[erased]". Records under a hold stay as they are."""
    pattern = token_pattern(needles)
    if pattern is None:
        return
    kinds_by_table = {k.table: k for k in registry.kinds()}
    for table in SQLModel.metadata.sorted_tables:
        if table.name in UNTOUCHED_TABLES:
            continue
        columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
        keys = list(table.primary_key.columns)
        if not columns or not keys:
            continue
        kind = kinds_by_table.get(table.name)
        for column in columns:
            matching = [
                row
                for row in session.execute(
                    table.select().with_only_columns(*keys, column).where(may_mention(column, needles))
                ).all()
                if mentions(row[len(keys)], pattern)
            ]
            if kind is not None and matching:
                position = [k.name for k in keys].index(kind.id_column)
                free = set(kept.unheld(kind, [row[position] for row in matching]))
                matching = [row for row in matching if row[position] in free]
            for row in matching:
                where = [k == row[i] for i, k in enumerate(keys)]
                if table.name in CONTENT_TABLES:
                    session.execute(table.delete().where(*where))
                    counts[f"{table.name}_deleted"] = counts.get(f"{table.name}_deleted", 0) + 1
                    continue
                session.execute(
                    table.update().where(*where).values({column.name: scrub(row[len(keys)], pattern, ERASED)})
                )
                counts[f"{table.name}_scrubbed"] = counts.get(f"{table.name}_scrubbed", 0) + 1
