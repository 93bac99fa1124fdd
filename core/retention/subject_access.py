"""Subject access: one JSON document of everything Quorum holds about a subject, streamed
in chunks so that a subject with years of traffic does not sit in memory; audited without
personal data (the event names person:<id> or a hash of the end-user id)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from core.audit.record import committing, record
from core.exports import BATCH_ROWS, CHUNK_BYTES, MIME, Export
from core.models.audit import AuditEvent
from core.models.budgets import Budget, UsageRecord
from core.models.catalog import PromptReview, PromptVersion
from core.models.gateway import GatewayCall, HeldRequest, StoredPayload
from core.models.identity import Membership, Person, RoleGrant, Team
from core.models.retention import LegalHold, SubjectRequest
from core.permissions import Actor, Permission, require
from core.retention.subjects import chunks, find_subject, subject_request_ids


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
    request_ids = sorted(subject_request_ids(session, subject))
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
    by_request = list(chunks(request_ids, 500))
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
