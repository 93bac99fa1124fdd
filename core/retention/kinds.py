"""The registry of record kinds that retention knows how to find, hold, delete or anonymize.

A kind names its table, the column that dates a record, the retention classes it falls
under and SQL for the hold dimensions (team, person, prompt). Adding a kind later, e.g.
experiment results, is one `register(RecordKind(...))` call in the module that owns the
table; nothing else in retention changes.

SQL fragments are written against the bare table name. Person conditions may use the
bound parameters `:{id}` (the person id) and `:{ref}` ("person:12"); prompt conditions
`:{id}` (the prompt id) and `:{sid}` (the same as text).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ANONYMIZED = "anonymized"


@dataclass(frozen=True)
class RecordKind:
    key: str
    label: str
    table: str
    id_column: str
    time_column: str
    classes: tuple[str, ...]
    team_sql: str | None = None
    person_sql: str | None = None
    prompt_sql: str | None = None
    # Columns set at expiry when the winning class says "anonymize", and the condition that
    # is true while a row still needs it (so a resumed run never counts a row twice).
    anonymize_set: dict[str, object] = field(default_factory=dict)
    # Columns set to an SQL expression of the row instead, e.g. a reference that must stay
    # unique per row ('anonymized:' || id) because a unique constraint includes it.
    anonymize_expressions: dict[str, str] = field(default_factory=dict)
    needs_anonymizing_sql: str | None = None
    can_delete: bool = True
    # True for rows retention never touches, whatever their class says (e.g. what four-eyes
    # still needs); enforcement and its preview leave them alone.
    keep_sql: str | None = None

    @property
    def can_anonymize(self) -> bool:
        return bool(self.anonymize_set or self.anonymize_expressions)


_KINDS: dict[str, RecordKind] = {}


def register(kind: RecordKind) -> RecordKind:
    if kind.key in _KINDS and _KINDS[kind.key] != kind:
        raise ValueError(f"record kind {kind.key!r} registered twice")
    if not kind.can_delete and not kind.can_anonymize:
        raise ValueError(f"record kind {kind.key!r} can neither be deleted nor anonymized")
    _KINDS[kind.key] = kind
    return kind


def kinds() -> list[RecordKind]:
    return list(_KINDS.values())


def kind(key: str) -> RecordKind:
    return _KINDS[key]


def kinds_for_class(class_key: str) -> list[RecordKind]:
    return [k for k in _KINDS.values() if class_key in k.classes]


_CALL_BY_PERSON = "request_id IN (SELECT request_id FROM gateway_call WHERE actor = :{ref})"
_CALL_BY_PROMPT = (
    "request_id IN (SELECT g.request_id FROM gateway_call g JOIN prompt p ON p.name = g.prompt_name WHERE p.id = :{id})"
)
_VERSION_TEAM = "(SELECT p.team_id FROM prompt p WHERE p.id = prompt_version.prompt_id)"
# Four-eyes needs a version's author until it is decided, and its approvals while it is in
# review, approved (a label may point at it any time) or labelled.
_UNDECIDED_VERSION = "state IN ('draft', 'in_review')"
_VERSION_THAT_MATTERS = (
    "version_id IN (SELECT v.id FROM prompt_version v WHERE v.state IN ('in_review', 'approved') "
    "OR v.id IN (SELECT l.version_id FROM prompt_label l))"
)

register(
    RecordKind(
        key="stored_payload",
        label="Stored request and response payloads",
        table="stored_payload",
        id_column="request_id",
        time_column="created_at",
        classes=("request_payloads", "response_payloads"),
        team_sql="team_id",
        person_sql=_CALL_BY_PERSON,
        prompt_sql=_CALL_BY_PROMPT,
    )
)
register(
    RecordKind(
        key="held_request",
        label="Held requests and their answers",
        table="held_request",
        id_column="id",
        time_column="created_at",
        classes=("request_payloads", "response_payloads"),
        team_sql="team_id",
        person_sql=_CALL_BY_PERSON,
        prompt_sql=_CALL_BY_PROMPT,
    )
)
register(
    RecordKind(
        # What an escalation rule or a low score caught, and a reviewer's "should have said":
        # kept as long as the answers it is about.
        key="escalation_catch",
        label="Escalation catches and answer reviews",
        table="escalation_catch",
        id_column="id",
        time_column="created_at",
        classes=("response_payloads",),
        team_sql="team_id",
        person_sql=_CALL_BY_PERSON,
        prompt_sql=_CALL_BY_PROMPT,
    )
)
register(
    RecordKind(
        key="gateway_call",
        label="Gateway call log",
        table="gateway_call",
        id_column="id",
        time_column="created_at",
        classes=("usage_rows",),
        team_sql="team_id",
        person_sql="actor = :{ref}",
        prompt_sql="prompt_name = (SELECT p.name FROM prompt p WHERE p.id = :{id})",
        anonymize_set={"actor": ANONYMIZED, "key_id": None},
        needs_anonymizing_sql=f"(actor <> '{ANONYMIZED}' OR key_id IS NOT NULL)",
    )
)
register(
    RecordKind(
        # The networks a key was used from (prefixes only): the call log's per-key data, so
        # it follows the call log's rule, dated by its last use. Anonymizing removes the key
        # and the network, as it removes the key behind a call.
        key="key_network",
        label="Networks each key was used from",
        table="key_network",
        id_column="id",
        time_column="last_seen",
        classes=("usage_rows",),
        team_sql="team_id",
        anonymize_set={"key_id": None, "network": ""},
        needs_anonymizing_sql="key_id IS NOT NULL",
    )
)
register(
    RecordKind(
        # Whether answers met their schema, counted per hour: kept as long as the answers.
        key="schema_check_rollup",
        label="JSON-schema checks of answers, per hour",
        table="schema_check_rollup",
        id_column="id",
        time_column="hour",
        classes=("response_payloads",),
        team_sql="team_id",
        prompt_sql="prompt_name = (SELECT p.name FROM prompt p WHERE p.id = :{id})",
    )
)
register(
    RecordKind(
        key="usage_record",
        label="Usage ledger",
        table="usage_record",
        id_column="id",
        time_column="occurred_at",
        classes=("usage_rows",),
        team_sql="team_id",
        person_sql="person_id = :{id}",
        prompt_sql="prompt_id = :{id}",
        anonymize_set={"person_id": None, "key_id": None},
        needs_anonymizing_sql="(person_id IS NOT NULL OR key_id IS NOT NULL)",
    )
)
register(
    RecordKind(
        key="prompt_version",
        label="Prompt versions",
        table="prompt_version",
        id_column="id",
        time_column="created_at",
        classes=("prompt_versions",),
        team_sql=_VERSION_TEAM,
        person_sql="author_person_id = :{id}",
        prompt_sql="prompt_id = :{id}",
        anonymize_set={"author_ref": ANONYMIZED, "author_person_id": None, "change_note": ""},
        needs_anonymizing_sql=f"(author_ref <> '{ANONYMIZED}' OR author_person_id IS NOT NULL OR change_note <> '')",
        # Labels, reviews and evidence point at versions: a version is anonymized, never deleted.
        can_delete=False,
        keep_sql=_UNDECIDED_VERSION,
    )
)
register(
    RecordKind(
        key="prompt_review",
        label="Review decisions",
        table="prompt_review",
        id_column="id",
        time_column="created_at",
        classes=("review_records",),
        team_sql=(
            "(SELECT p.team_id FROM prompt_version v JOIN prompt p ON p.id = v.prompt_id "
            "WHERE v.id = prompt_review.version_id)"
        ),
        person_sql="reviewer_person_id = :{id}",
        prompt_sql="version_id IN (SELECT v.id FROM prompt_version v WHERE v.prompt_id = :{id})",
        # One decision per reviewer and version is a unique constraint: each anonymized reviewer
        # stays distinct ("anonymized:<id>"), so a version with two reviews can be anonymized.
        anonymize_set={"reviewer_person_id": None, "comment": ""},
        anonymize_expressions={"reviewer_ref": f"'{ANONYMIZED}:' || CAST(id AS VARCHAR(20))"},
        needs_anonymizing_sql=(
            f"(reviewer_ref NOT LIKE '{ANONYMIZED}:%' OR reviewer_person_id IS NOT NULL OR comment <> '')"
        ),
        keep_sql=_VERSION_THAT_MATTERS,
    )
)
register(
    RecordKind(
        key="experiment",
        label="A/B experiments and their outputs",
        table="experiment",
        id_column="id",
        time_column="created_at",
        classes=("playground_outputs",),
        team_sql="team_id",
        person_sql="created_by = :{ref}",
        prompt_sql="prompt_id = :{id}",
    )
)
# An event about a prompt, one of its versions, experiments or gateway calls: a prompt hold keeps them all.
_EVENT_ABOUT_PROMPT = (
    "((target_type = 'prompt' AND target_id = :{sid})"
    " OR (target_type = 'prompt_version' AND target_id IN"
    " (SELECT CAST(v.id AS VARCHAR(80)) FROM prompt_version v WHERE v.prompt_id = :{id}))"
    " OR (target_type = 'experiment' AND target_id IN"
    " (SELECT CAST(e.id AS VARCHAR(80)) FROM experiment e WHERE e.prompt_id = :{id}))"
    " OR (target_type = 'gateway_request' AND target_id IN"
    " (SELECT g.request_id FROM gateway_call g JOIN prompt p ON p.name = g.prompt_name WHERE p.id = :{id})))"
)
# Audit events are pruned as a prefix of the chain behind a signed checkpoint (enforce.py).
AUDIT_KIND = register(
    RecordKind(
        key="audit_event",
        label="Audit events",
        table="audit_event",
        id_column="seq",
        time_column="occurred_at",
        classes=("audit_events",),
        team_sql="team_id",
        person_sql="(actor = :{ref} OR (target_type = 'person' AND target_id = :{sid}))",
        prompt_sql=_EVENT_ABOUT_PROMPT,
    )
)
