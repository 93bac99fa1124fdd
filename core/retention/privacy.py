"""Data-subject requests: access (one JSON document of everything held) and erasure.

A subject is a person of the directory (by e-mail) or an application's end user (by the
id sent in a request's `user` field). Audit events keep the stable pseudonymous actor id
(person:12): the chain is never edited, and after erasure that id points at an
anonymized person row. Both requests are audited without personal data: the event
names person:<id> or a hash of the end-user id.

A subject's name or e-mail is matched exactly, as a whole token (core.retention.mentions):
a name such as "%" or "_" matches only itself. Erasure keeps every record a legal hold
covers (any dimension: team, person, prompt, time range) and says how many per hold;
it is refused outright while a hold names the person.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import BindParameter, String, Text, func, text
from sqlmodel import Session, SQLModel, col, select

from core.audit.record import committing, record
from core.catalog import approvals
from core.db import changed_rows, saved_id
from core.errors import Conflict, NotFound, ValidationError
from core.exports import BATCH_ROWS, CHUNK_BYTES, MIME, Export
from core.models.audit import AuditEvent
from core.models.budgets import Budget, UsageRecord
from core.models.catalog import PromptReview, PromptVersion
from core.models.gateway import GatewayCall, HeldRequest, StoredPayload
from core.models.identity import Membership, Person, RoleGrant, Team
from core.models.retention import LegalHold, SubjectRequest
from core.paging import Page, keyset_page
from core.permissions import Actor, Permission, require
from core.retention import kinds as registry
from core.retention.holds import active_holds, held_by, holds_on_person, typed
from core.retention.mentions import may_mention, mentions, scrub, token_pattern

ERASED = "[erased]"
Item = TypeVar("Item")
# Tables whose rows are deleted when they mention the subject (their text is the payload itself).
CONTENT_TABLES = ("stored_payload", "gateway_cache_entry")
# Never rewritten: the chain (people appear there only as ids) and the person row (anonymized below).
UNTOUCHED_TABLES = ("audit_event", "audit_head", "audit_checkpoint", "alembic_version", "person")


@dataclass(frozen=True)
class Subject:
    ref: str  # person:12 | end_user:<hash>
    person: Person | None = None
    end_user: str | None = None

    @property
    def needles(self) -> list[str]:
        if self.person is not None:
            return [n for n in (self.person.email, self.person.display_name) if n and len(n) >= 3]
        return []


def find_subject(session: Session, *, email: str | None = None, end_user: str | None = None) -> Subject:
    if bool(email) == bool(end_user):
        raise ValidationError("Name the subject by exactly one of: e-mail, end-user id")
    if email:
        person = session.exec(select(Person).where(Person.email == email.strip().lower())).first()
        if person is None:
            raise NotFound("No person with that e-mail address")
        return Subject(ref=f"person:{person.id}", person=person)
    end_user = (end_user or "").strip()
    if not end_user:
        raise ValidationError("The end-user id is empty")
    return Subject(ref="end_user:" + hashlib.sha256(end_user.encode()).hexdigest()[:16], end_user=end_user)


def _request_ids(session: Session, subject: Subject) -> set[str]:
    ids: set[str] = set()
    if subject.person is not None:
        ids |= set(session.exec(select(GatewayCall.request_id).where(GatewayCall.actor == subject.ref)))
        pattern = token_pattern(subject.needles)
        if pattern is not None:
            candidates = session.exec(
                select(StoredPayload.request_id, StoredPayload.request_json, StoredPayload.response_json).where(
                    may_mention(col(StoredPayload.request_json), subject.needles)
                    | may_mention(col(StoredPayload.response_json), subject.needles)
                )
            )
            ids |= {
                rid
                for rid, request, response in candidates
                if mentions(request, pattern) or mentions(response, pattern)
            }
    else:
        marker = json.dumps({"user": subject.end_user})[1:-1]  # "user": "<id>" exactly as stored
        ids |= set(
            session.exec(
                select(StoredPayload.request_id).where(
                    col(StoredPayload.request_json).contains(marker, autoescape=True)
                )
            )
        )
    return ids


# ---- access ------------------------------------------------------------------------------------


def access_export(
    *, session: Session, actor: Actor, email: str | None = None, end_user: str | None = None
) -> dict[str, Any]:
    """Everything Quorum holds about the subject, as one JSON-ready document; audited.

    The document `access_stream` writes, read back (for small subjects and tests)."""
    prepared = access_stream(session=session, actor=actor, email=email, end_user=end_user)
    document: dict[str, Any] = json.loads(b"".join(prepared.chunks()))
    return document


def access_stream(*, session: Session, actor: Actor, email: str | None = None, end_user: str | None = None) -> Export:
    """Everything Quorum holds about the subject, as one JSON document written as it is read.

    The request is recorded and audited now, with the count of each section; the document
    then streams in a session of its own, a section at a time, so a subject with a million
    calls downloads in constant memory (the subject's request ids are held, not their rows).
    """
    require(actor, Permission.RETENTION_MANAGE)
    subject = find_subject(session, email=email, end_user=end_user)
    request_ids = sorted(_request_ids(session, subject))
    head: dict[str, Any] = {"subject": subject.ref}
    person = subject.person
    if person is not None:
        head["person"] = _row(person)
        head["teams"] = [
            t.name
            for t in session.exec(
                select(Team)
                .join(Membership, col(Membership.team_id) == Team.id)
                .where(Membership.person_id == person.id)
            )
        ]
        head["roles"] = [g.role for g in session.exec(select(RoleGrant).where(RoleGrant.person_id == person.id))]
    sections = _access_sections(person, request_ids)
    counts = {k: len(v) for k, v in head.items() if isinstance(v, list)}
    for name, queries, _convert in sections:
        counts[name] = sum(session.exec(select(func.count()).select_from(q.subquery())).one() for q in queries)
    with committing(session):
        session.add(
            SubjectRequest(
                kind="access", subject_ref=subject.ref, actor=actor.ref, summary_json=json.dumps(counts, sort_keys=True)
            )
        )
        record(
            session,
            actor=actor,
            action="privacy.access",
            target_type="data_subject",
            target_id=subject.ref,
            after={"counts": counts},
        )
    engine = session.get_bind()

    def produce(export: Export) -> Iterator[bytes]:
        require(actor, Permission.RETENTION_MANAGE)
        buffer = io.StringIO()
        buffer.write("{\n" + ",\n".join(f"{json.dumps(k)}: {_dumps(v)}" for k, v in head.items()))
        with Session(engine, expire_on_commit=False) as reading:
            for name, queries, convert in sections:
                buffer.write(f",\n{json.dumps(name)}: [")
                first = True
                for query in queries:
                    for row in reading.exec(query.execution_options(yield_per=BATCH_ROWS)):
                        buffer.write(("\n" if first else ",\n") + _dumps(convert(row)))
                        first = False
                        export.rows += 1
                        if buffer.tell() >= CHUNK_BYTES:
                            yield _take(buffer)
                buffer.write("]" if first else "\n]")
        buffer.write("\n}\n")
        yield _take(buffer)

    return Export(
        file_name="subject-access.json",
        mime=MIME["json"],
        produce=produce,
        total=sum(counts[name] for name, _queries, _convert in sections),
        summary=counts,
    )


def _access_sections(person: Person | None, request_ids: list[str]) -> list[tuple[str, list[Any], Any]]:
    """(name, queries, row -> dict) of each list in the document, in order."""
    sections: list[tuple[str, list[Any], Any]] = []
    if person is not None:
        ref = f"person:{person.id}"
        sections += [
            (
                "audit_events",
                [
                    select(AuditEvent)
                    .where(
                        (AuditEvent.actor == ref)
                        | ((AuditEvent.target_type == "person") & (AuditEvent.target_id == str(person.id)))
                    )
                    .order_by(col(AuditEvent.seq))
                ],
                _row,
            ),
            ("usage_records", [select(UsageRecord).where(UsageRecord.person_id == person.id)], _row),
            (
                "prompt_versions_authored",
                [select(PromptVersion).where(PromptVersion.author_person_id == person.id)],
                _row,
            ),
            ("reviews", [select(PromptReview).where(PromptReview.reviewer_person_id == person.id)], _row),
            ("budgets", [select(Budget).where(Budget.person_id == person.id)], _row),
            ("legal_holds_owned", [select(LegalHold).where(LegalHold.owner_person_id == person.id)], _row),
        ]
    by_request = list(_chunks(request_ids, 500))
    sections += [
        ("gateway_calls", [select(GatewayCall).where(col(GatewayCall.request_id).in_(c)) for c in by_request], _row),
        (
            "stored_payloads",
            [select(StoredPayload).where(col(StoredPayload.request_id).in_(c)) for c in by_request],
            _payload_row,
        ),
        ("held_requests", [select(HeldRequest).where(col(HeldRequest.request_id).in_(c)) for c in by_request], _row),
    ]
    return sections


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _take(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


def _row(model: SQLModel) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in model.model_dump().items()}


def _payload_row(payload: StoredPayload) -> dict[str, Any]:
    out = _row(payload)
    for name in ("request_json", "response_json"):
        value = out.pop(name)
        out[name.removesuffix("_json")] = json.loads(value) if value else None
    return out


# ---- erasure ------------------------------------------------------------------------------------


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
            for chunk in _chunks(sorted(ids), 500):
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
    request_ids = sorted(_request_ids(session, subject))
    with committing(session):
        payloads = kept.unheld(registry.kind("stored_payload"), request_ids)
        for chunk in _chunks(payloads, 500):
            counts["stored_payloads_deleted"] = counts.get("stored_payloads_deleted", 0) + changed_rows(
                session.execute(
                    text("DELETE FROM stored_payload WHERE request_id IN :ids").bindparams(_expanding("ids")),
                    {"ids": chunk},
                )
            )
        held_kind = registry.kind("held_request")
        held_ids = [
            row[0]
            for chunk in _chunks(request_ids, 500)
            for row in session.execute(
                text("SELECT id FROM held_request WHERE request_id IN :ids").bindparams(_expanding("ids")),
                {"ids": chunk},
            )
        ]
        for chunk in _chunks(kept.unheld(held_kind, held_ids), 500):
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


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


def recent_requests(session: Session, *, actor: Actor, limit: int = 50) -> list[SubjectRequest]:
    """The newest `limit` subject requests (the page pages through all of them: `requests_page`)."""
    return requests_page(session, actor=actor, limit=limit).items


def requests_page(
    session: Session, *, actor: Actor, before: int | None = None, limit: int = 50
) -> Page[SubjectRequest]:
    """A page of answered subject requests, newest first (`before`: the previous page's `older`)."""
    require(actor, Permission.RETENTION_READ)
    return keyset_page(
        session, select(SubjectRequest), col(SubjectRequest.id), before=before, limit=limit, convert=_same
    )


def _same(row: SubjectRequest) -> SubjectRequest:
    return row
