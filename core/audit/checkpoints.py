"""Signed checkpoints of the audit chain: "at `created_at` the chain had `seq` events ending in `head_hash`".

A checkpoint catches what the chain alone cannot: the newest events deleted (the tail is
shorter than a checkpoint says) and the whole chain recomputed after an edit (the head
hash differs from a signed one). It is signed with Ed25519: the private key lives in
QUORUM_AUDIT_SIGNING_KEY (environment or secrets file, never the database), and the
public key can be published so that anyone can check checkpoints without being able to
forge them (HMAC would need the verifier to hold the secret).

Each checkpoint is written to the database and appended to a JSON-lines file in
QUORUM_AUDIT_CHECKPOINT_DIR (default data/checkpoints/), a directory that can live on
other storage (WORM bucket, another host), so someone with only database access cannot
delete it. Checkpoints are made on demand (`quorum audit checkpoint`, the verify page),
after every clean verification, and automatically after every `CHECKPOINT_EVERY`th event.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlmodel import Session

from core import clock
from core.audit import chain as audit_chain
from core.errors import NotFound, ValidationError
from core.models.audit import AuditCheckpoint
from core.permissions import Actor, Permission, require
from core.settings import ConfigError, settings

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 1000
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
NO_KEY_WARNING = (
    "No audit signing key (QUORUM_AUDIT_SIGNING_KEY) is configured: there are no signed checkpoints, "
    "so deleting the newest events or recomputing the whole chain after an edit would go unnoticed. "
    "Edits, deletions, insertions and reorderings inside the chain are still detected."
)
_DUE = "quorum_audit_checkpoint_due"


@dataclass(frozen=True)
class Checkpoint:
    chain_id: str
    seq: int
    head_hash: str
    created_at: str  # canonical UTC text, as signed
    pruned_before: int | None
    key_id: str
    signature: str
    source: str = "database"  # or "file"
    # Made by a clean verification: events up to `seq` were all verified (incremental mode starts here).
    verified: bool = False

    def signed_payload(self) -> bytes:
        statement: dict[str, object] = {
            "v": 1,
            "chain_id": self.chain_id,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
            "pruned_before": self.pruned_before,
            "key_id": self.key_id,
        }
        if self.verified:  # only then, so that checkpoints signed before the flag existed still verify
            statement["verified"] = True
        return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()

    def file_line(self) -> str:
        record = asdict(self)
        record.pop("source")
        if not self.verified:
            record.pop("verified")
        return json.dumps(record, sort_keys=True, separators=(",", ":"))


# ---- keys ---------------------------------------------------------------------------------


def _key_bytes(value: str, name: str) -> bytes:
    value = value.strip()
    try:
        if len(value) == 64:
            raw = bytes.fromhex(value)
        else:
            padded = value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4)
            raw = base64.urlsafe_b64decode(padded)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{name} must be 32 bytes as 64 hex digits or base64 (make one with `quorum audit keygen`)")
    return raw


@lru_cache(maxsize=4)
def _private_key(value: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_key_bytes(value, "QUORUM_AUDIT_SIGNING_KEY"))


@lru_cache(maxsize=4)
def _public_key(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_key_bytes(value, "QUORUM_AUDIT_PUBLIC_KEY"))


def signing_key() -> Ed25519PrivateKey | None:
    value = settings().audit_signing_key
    return _private_key(value) if value else None


def public_key() -> Ed25519PublicKey | None:
    """The key that checks signatures: QUORUM_AUDIT_PUBLIC_KEY, else the signing key's public half."""
    if settings().audit_public_key:
        return _public_key(settings().audit_public_key)
    private = signing_key()
    return private.public_key() if private else None


def public_key_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def new_key_pair() -> tuple[str, str]:
    """A fresh (private, public) key pair as hex, for `quorum audit keygen`."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return raw.hex(), public_key_hex(private.public_key())


def protection_status() -> tuple[bool, str]:
    """(protected, a sentence for the UI): whether checkpoints are signed, and with which key."""
    try:
        key = public_key()
    except ConfigError as error:
        return False, str(error)
    if signing_key() is None:
        if key is not None:
            return False, (
                f"Checkpoints can be checked with public key {key_id(key)}, but new ones cannot be "
                "signed here (no QUORUM_AUDIT_SIGNING_KEY). " + NO_KEY_WARNING.split(": ", 1)[1]
            )
        return False, NO_KEY_WARNING
    return True, (
        f"Checkpoints are signed with Ed25519 key {key_id(key)} (public key {public_key_hex(key)}); "
        f"they are also appended to {checkpoint_file()}."
    )


def signature_ok(checkpoint: Checkpoint, key: Ed25519PublicKey) -> bool:
    if checkpoint.key_id != key_id(key):
        return False
    if not re.fullmatch(r"[0-9a-f]{128}", checkpoint.signature):
        return False  # one spelling only: "AB" for "ab" is a changed checkpoint too
    try:
        key.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_payload())
    except (InvalidSignature, ValueError):
        return False
    return True


# ---- making checkpoints ----------------------------------------------------------------------


def create_checkpoint(*, session: Session, actor: Actor, pruned_before: int | None = None) -> Checkpoint:
    """Sign the chain's current head (or, with `pruned_before=S`, the event S-1 before a prune).

    The file line is written before the database row: a checkpoint states a fact about
    events already committed, so a line whose row then failed to commit is still true.
    """
    require(actor, Permission.AUDIT_VERIFY)
    if signing_key() is None:
        raise ValidationError("Cannot sign a checkpoint: set QUORUM_AUDIT_SIGNING_KEY (see `quorum audit keygen`)")
    if pruned_before is not None:
        if pruned_before < 2:
            raise ValidationError("pruned_before must be at least 2 (events 1..S-1 are pruned)")
        row = session.execute(
            text("SELECT seq, hash FROM audit_event WHERE seq = :s"), {"s": pruned_before - 1}
        ).first()
        if row is None:
            raise NotFound(f"No audit event with seq {pruned_before - 1} to anchor the prune on")
    else:
        row = session.execute(text("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")).first()
        if row is None:
            raise ValidationError("Nothing to checkpoint: the audit log is empty")
    return sign_head(session=session, seq=int(row[0]), head_hash=str(row[1]), pruned_before=pruned_before)


def sign_head(
    *, session: Session, seq: int, head_hash: str, pruned_before: int | None = None, verified: bool = False
) -> Checkpoint:
    """Sign (seq, head_hash), append it to the file, then store it (callers check permission).

    `verified` states that a verification found events up to `seq` sound; only verify_chain says so.
    """
    key = signing_key()
    if key is None:
        raise ValidationError("Cannot sign a checkpoint: set QUORUM_AUDIT_SIGNING_KEY (see `quorum audit keygen`)")
    chain = audit_chain.chain_id(session) or ""
    unsigned = Checkpoint(
        chain_id=chain,
        seq=seq,
        head_hash=head_hash,
        created_at=audit_chain.canonical_time(clock.now()),
        pruned_before=pruned_before,
        key_id=key_id(key.public_key()),
        signature="",
        verified=verified,
    )
    checkpoint = Checkpoint(**{**asdict(unsigned), "signature": key.sign(unsigned.signed_payload()).hex()})
    _append_to_file(checkpoint)
    session.add(
        AuditCheckpoint(
            chain_id=checkpoint.chain_id,
            seq=checkpoint.seq,
            head_hash=checkpoint.head_hash,
            created_at=_parse_time(checkpoint.created_at),
            pruned_before=pruned_before,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
            verified=verified,
        )
    )
    session.commit()
    return checkpoint


def checkpoint_file() -> Path:
    return Path(settings().audit_checkpoint_dir) / CHECKPOINT_FILE


def _append_to_file(checkpoint: Checkpoint) -> None:
    path = checkpoint_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: concurrent writers' lines never interleave mid-line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (checkpoint.file_line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def retire_file(*, session: Session, actor: Actor) -> Path | None:
    """Before a deliberate reset: move this chain's checkpoint file aside, as the retired chain's record.

    A new chain's `verify` fails on every signed line of an old chain left in the file (that is
    also what replacing the chain looks like), so the reset itself must put the file away.
    Returns where it went, or None when there was none.
    """
    require(actor, Permission.AUDIT_VERIFY)
    path = checkpoint_file()
    if not path.exists():
        return None
    chain = audit_chain.chain_id(session) or "unknown"
    target = path.with_name(f"audit-checkpoints-retired-{chain}-{clock.now():%Y%m%dT%H%M%S}.jsonl")
    path.rename(target)
    log.warning("audit checkpoint file of chain %s retired to %s", chain, target)
    return target


def _parse_time(value: str):
    from datetime import UTC, datetime

    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def note_event(session: Session, seq: int) -> None:
    """Called by `record()`: every CHECKPOINT_EVERY events, checkpoint once the change commits."""
    note_events(session, seq, seq)


def note_events(session: Session, first: int, last: int) -> None:
    """`note_event` for the seqs first..last written together (a batch may step over a multiple)."""
    if last // CHECKPOINT_EVERY > (first - 1) // CHECKPOINT_EVERY and settings().audit_signing_key:
        session.info[_DUE] = True


@sa_event.listens_for(Session, "after_commit")
def _checkpoint_after_commit(session: Session) -> None:
    if not session.info.pop(_DUE, False):
        return
    try:
        engine = session.get_bind().execution_options(quorum_write=True)
        with Session(engine, expire_on_commit=False) as own:
            create_checkpoint(session=own, actor=Actor.system("audit-checkpoint"))
    except Exception:  # a missed periodic checkpoint is made good by the next one
        log.exception("periodic audit checkpoint failed")


@sa_event.listens_for(Session, "after_rollback")
def _forget_due_checkpoint(session: Session) -> None:
    session.info.pop(_DUE, None)


# ---- reading checkpoints ---------------------------------------------------------------------


def database_checkpoints(session: Session) -> list[Checkpoint]:
    rows = session.execute(
        text(
            "SELECT chain_id, seq, head_hash, created_at, pruned_before, key_id, signature, verified "
            "FROM audit_checkpoint ORDER BY seq, id"
        )
    ).all()
    return [
        Checkpoint(
            str(r[0]),
            int(r[1]),
            str(r[2]),
            audit_chain.canonical_time(r[3]),
            None if r[4] is None else int(r[4]),
            str(r[5]),
            str(r[6]),
            verified=bool(r[7]),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class FileCheckpoints:
    checkpoints: list[Checkpoint]
    # (line number, checkpoint) for lines naming a chain this database does not hold: a replaced
    # chain, or a rewritten chain id. Verify fails on each one that carries a valid signature.
    other_chains: list[tuple[int, Checkpoint]]
    unreadable: list[int]  # line numbers that are not a checkpoint


def file_checkpoints(chain: str | None, path: Path | None = None) -> FileCheckpoints:
    """The checkpoints of the configured file (or of `path`), sorted by the chain they name."""
    path = path or checkpoint_file()
    if not path.exists():
        return FileCheckpoints([], [], [])
    found, others, unreadable = [], [], []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                checkpoint = Checkpoint(
                    chain_id=str(data["chain_id"]),
                    seq=int(data["seq"]),
                    head_hash=str(data["head_hash"]),
                    created_at=str(data["created_at"]),
                    pruned_before=None if data["pruned_before"] is None else int(data["pruned_before"]),
                    key_id=str(data["key_id"]),
                    signature=str(data["signature"]),
                    source="file",
                    verified=data.get("verified", False) is True,
                )
            except (ValueError, KeyError, TypeError):
                unreadable.append(number)
                continue
            if checkpoint.chain_id == chain:
                found.append(checkpoint)
            else:
                others.append((number, checkpoint))
    return FileCheckpoints(found, others, unreadable)


def recent_checkpoints(session: Session, *, actor: Actor, limit: int = 20) -> list[Checkpoint]:
    require(actor, Permission.AUDIT_READ)
    return list(reversed(database_checkpoints(session)))[:limit]
