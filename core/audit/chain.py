"""The hash chain under the audit log: canonical form, event hashes, and the chain head.

Each event stores the previous event's hash and its own: SHA-256 over a canonical JSON
array of its fields and that previous hash. Writers serialize on the one-row
`audit_head` table: `UPDATE ... SET seq = seq + 1 ... RETURNING` takes SQLite's write lock
or PostgreSQL's row lock inside the caller's transaction, so two writers never chain onto
the same head, and a rolled-back change rolls its seq back too (no gaps).

What is hashed, and why:
- `seq` is not in the hash. An event's position is fixed by the chain of previous
  hashes and by the signed checkpoints (seq -> head hash); keeping it out is what lets
  the verifier tell an insertion or a renumbering apart from an edit of the content.
  A changed seq still shows, as a gap, a duplicate or a checkpoint mismatch.
- Personal data is not in the hash because it is not in the event: actors are stable
  ids such as person:12, so erasing a person's name never breaks the chain.
- Times are hashed as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC, which is also how SQLite
  stores them, so on SQLite the database itself builds the canonical form for the verifier.
- The canonical form is length-prefixed text ("qa1|" then `len:value` per field, `~` for
  NULL) rather than JSON: unambiguous, and cheap enough to verify 200,000+ events a second.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlmodel import Session

from core.prebuilt import Prebuilt
from core.together import Part

GENESIS_HASH = "0" * 64
# Names the canonical form; part of every hashed payload so it can evolve.
FORMAT = "qa1|"
HASHED_COLUMNS = (
    "event_id",
    "occurred_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "team_id",
    "before_json",
    "after_json",
    "prev_hash",
)

_sha256 = hashlib.sha256


def canonical_time(value: datetime | str) -> str:
    """The hashed form of a time: UTC, microseconds, a space between date and time."""
    if isinstance(value, str):
        return value  # SQLite's stored text is already in this form
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return f"{value:%Y-%m-%d %H:%M:%S.%f}"


def _field(value) -> str:
    # Length-prefixed, "~" for NULL: no value can be mistaken for another or for a boundary.
    if value is None:
        return "~"
    value = str(value)
    return f"{len(value)}:{value}"


def canonical_payload(row: tuple) -> str:
    """The canonical form of a row of HASHED_COLUMNS: FORMAT, then each field length-prefixed."""
    event_id, occurred_at, *rest = row
    return FORMAT + _field(event_id) + _field(canonical_time(occurred_at)) + "".join(_field(v) for v in rest)


# May hold NULL (hashed as "~"); the other hashed columns are NOT NULL in the schema.
NULLABLE_COLUMNS = frozenset({"team_id", "before_json", "after_json"})


def canonical_payload_sql(dialect: str) -> str | None:
    """The same canonical form computed by the database itself (the verifier's fast path), else None.

    SQLite stores times as the canonical text and its length() counts characters like
    Python's len(), so the database can build the payload in C (`sqlite_payload_sql`); tests
    check both agree. PostgreSQL builds it too (`postgres_payload_sql`).
    """
    if dialect == "postgresql":
        return postgres_payload_sql()
    if dialect != "sqlite":
        return None
    return sqlite_payload_sql()


def sqlite_payload_sql(widths: Mapping[str, int] | None = None) -> str:
    """SQLite's canonical form of a row, built by one printf(): about twice as fast as a chain of `||`.

    printf() prints a NULL argument as nothing, so the format itself is chosen by which nullable
    columns are NULL: "~" and "%.0s%.0s" (the NULL length and value, printed as nothing) in the
    NULL ones' places. That costs less than building each "length:" prefix with `||`, which
    allocates a string per operator. A column named in `widths` has its length written into the
    format instead of measured row by row: the caller must check that every value has that many
    characters (core.audit.group_check does), or the form is not the canonical one.
    """
    widths = widths or {}
    nullable = [column for column in HASHED_COLUMNS if column in NULLABLE_COLUMNS]
    if any(column in widths for column in nullable):
        raise ValueError("a nullable column has no fixed width")

    def pattern(nulls: frozenset[str]) -> str:
        text = FORMAT
        for column in HASHED_COLUMNS:
            if column in widths:
                text += f"{widths[column]}:%s"
            else:
                text += "~%.0s%.0s" if column in nulls else "%d:%s"
        return text

    args = [column if column in widths else f"length({column}), {column}" for column in HASHED_COLUMNS]
    # Bit i of the selector is set when the i-th nullable column is NULL; no NULL at all comes first.
    selector = " + ".join(f"{1 << i} * ({column} IS NULL)" for i, column in enumerate(nullable))
    masks = sorted(range(1 << len(nullable)), key=lambda mask: (mask.bit_count(), mask))
    cases = " ".join(
        f"WHEN {mask} THEN '{pattern(frozenset(c for i, c in enumerate(nullable) if mask >> i & 1))}'" for mask in masks
    )
    return f"printf(CASE {selector} {cases} END, {', '.join(args)})"


def _pg(operator: str) -> str:
    return f" OPERATOR(pg_catalog.{operator}) "


# to_char() with an explicit pattern does not depend on the session's DateStyle.
_PG_TIME = "pg_catalog.to_char(pg_catalog.timezone('UTC', occurred_at), 'YYYY-MM-DD HH24:MI:SS.US')"


def postgres_payload_sql() -> str:
    """PostgreSQL's text of the canonical form, as UTF-8 bytes (bytea), for a database in UTF8.

    Every function and operator is named with its schema: the table's owner can create a
    `public.length(varchar)` that PostgreSQL would prefer to the built-in one, and the verifier
    must not run code the people it checks can write. Its length() counts characters like
    Python's len(); times outside years 1000-9999 are rebuilt in Python (`exact_row_sql`).
    """
    concat = _pg("||")
    parts = [f"'{FORMAT}'"]
    for column in HASHED_COLUMNS:
        if column == "occurred_at":
            parts.append(f"'26:'{concat}{_PG_TIME}")
            continue
        value = f"CAST({column} AS pg_catalog.text)"
        field = f"pg_catalog.length({value}){concat}':'{concat}{value}"
        parts.append(f"COALESCE({field}, '~')" if column in NULLABLE_COLUMNS else field)
    return f"pg_catalog.convert_to({concat.join(parts)}, 'UTF8')"


def exact_row_sql(dialect: str) -> str | None:
    """SQL giving NULL for a row whose canonical form the database builds exactly, else the row's id as text.

    Such rows (only a tamperer writes them) are rebuilt in Python from the stored values.
    """
    if dialect == "sqlite":
        return stored_nul_sql(dialect)
    if dialect == "postgresql":
        # to_char() pads a year below 1000 to four digits and writes more for a year past 9999.
        return (
            f"CASE WHEN occurred_at{_pg('>=')}'1000-01-01 00:00:00+00' AND occurred_at{_pg('<')}"
            "'10000-01-01 00:00:00+00' THEN NULL ELSE CAST(id AS pg_catalog.text) END"
        )
    return None


def stored_nul_sql(dialect: str) -> str | None:
    """SQL giving NULL for a row whose hashed text holds no NUL byte, else the row's id as text (SQLite only).

    printf('%s') and length() stop at a NUL, so text with a NUL and more appended would build
    the same payload as the text without them. A length check, then instr() where it is needed, finds such rows;
    the verifier then builds their form in Python from the stored bytes. prev_hash needs no
    check: the verifier compares the whole stored value with the previous hash. (PostgreSQL text
    cannot hold NUL, and `record()` refuses it, so a NUL in a stored event is always tampering.)
    """
    if dialect != "sqlite":
        return None
    checks = []
    for column in HASHED_COLUMNS:
        if column == "prev_hash":
            continue
        value = f"ifnull({column}, '')" if column in NULLABLE_COLUMNS else column
        # length() of text counts characters up to the first NUL; of a blob, every byte (no scan).
        # Equal means ASCII with no NUL, the common case, so instr()'s byte-by-byte search runs
        # only on text that holds a NUL or a non-ASCII character.
        checks.append(f"(length(CAST({value} AS BLOB)) != length({value}) AND instr(CAST({value} AS BLOB), x'00'))")
    return f"iif({' OR '.join(checks)}, CAST(id AS TEXT), NULL)"


def stored_payload(row: tuple) -> bytes:
    """The canonical form of a row of HASHED_COLUMNS read as raw bytes (CAST(... AS BLOB)).

    Hashes exactly the bytes stored: characters are counted after decoding, and bytes that are
    not UTF-8 (only a tamperer writes them) are carried through unchanged.
    """
    values = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for v in row]
    return canonical_payload(tuple(values)).encode("utf-8", "surrogateescape")


def event_hash(
    *,
    prev_hash: str,
    event_id: str,
    occurred_at: datetime | str,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    team_id: int | None,
    before_json: str | None,
    after_json: str | None,
) -> str:
    """SHA-256 (hex) of one event's canonical form."""
    return row_hash(
        (event_id, occurred_at, actor, action, target_type, target_id, team_id, before_json, after_json, prev_hash)
    )


def row_hash(row: tuple) -> str:
    """The hash of a raw row of HASHED_COLUMNS (occurred_at as datetime or SQLite's text)."""
    return _sha256(canonical_payload(row).encode()).hexdigest()


# Built once: they run on every audited change (every gateway call).
_ADVANCE = Prebuilt(text("UPDATE audit_head SET seq = seq + :n WHERE id = 1 RETURNING seq, head_hash"))
_SET_HEAD = Prebuilt(text("UPDATE audit_head SET head_hash = :h WHERE id = 1"))


def _connection(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def advance_head(session: Session | Connection, count: int = 1) -> tuple[int, str]:
    """Take the next `count` seqs and the current head hash, locking the head until the transaction ends.

    Returns the first of the seqs taken (they run on to first + count - 1) and the hash the
    first event chains onto. A batch of events takes one hot-row update, not one per event.
    """
    if count < 1:
        raise ValueError("advance_head takes at least one seq")
    rows = _ADVANCE.fetchall(_connection(session), {"n": count})
    if not rows:
        _create_head(session)
        rows = _ADVANCE.fetchall(_connection(session), {"n": count})
    return int(rows[0][0]) - count + 1, str(rows[0][1])


def set_head_hash(session: Session | Connection, head_hash: str) -> None:
    _SET_HEAD.execute(_connection(session), {"h": head_hash})


def head_hash_update(head_hash: str) -> Part:
    """`set_head_hash` as a part of a statement run with others (core.together): the head row is
    the transaction's own once `advance_head` locked it."""
    return (_SET_HEAD, {"h": head_hash})


def _create_head(session: Session | Connection) -> None:
    """The first event of a database (or after a wipe): start the head at the newest event.

    ON CONFLICT DO NOTHING lets two first writers race safely; the loser then locks the
    winner's row.
    """
    last = session.execute(text("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")).first()
    seq, head = (int(last[0]), str(last[1])) if last else (0, GENESIS_HASH)
    chain_id = _chain_id_from_checkpoints(session) if last else None
    session.execute(
        text(
            "INSERT INTO audit_head (id, seq, head_hash, chain_id) VALUES (1, :s, :h, :c) ON CONFLICT (id) DO NOTHING"
        ),
        {"s": seq, "h": head, "c": chain_id or str(uuid.uuid4())},
    )


def _chain_id_from_checkpoints(session: Session | Connection) -> str | None:
    row = session.execute(text("SELECT chain_id FROM audit_checkpoint ORDER BY seq DESC LIMIT 1")).first()
    return str(row[0]) if row else None


def chain_id(session: Session) -> str | None:
    """The id of this database's chain (None before the first event)."""
    row = session.execute(text("SELECT chain_id FROM audit_head WHERE id = 1")).first()
    return str(row[0]) if row else None


def head(session: Session) -> tuple[int, str] | None:
    """(seq, hash) recorded by the head row, or None before the first event."""
    row = session.execute(text("SELECT seq, head_hash FROM audit_head WHERE id = 1")).first()
    return (int(row[0]), str(row[1])) if row else None
