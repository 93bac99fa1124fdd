"""`quorum backup restore` and `quorum backup verify`: a backup back into a database, and the drill that proves it.

`restore_backup` puts a backup into an empty database (one with no rows: a fresh file, or a
schema migrated but unused) and refuses any other, so that a restore never mixes with or
overwrites live data. It records a `backup.restore` event on the restored chain.

`verify_backup` is the restore drill without a target: it checks the dump against the
manifest's sha256 (and the manifest's signature, when the key is known), restores into a
scratch database (a temporary SQLite file, or a PostgreSQL database it creates and drops),
compares what it finds with the manifest, and runs the audit verification there against the
checkpoint file: the configured one (off the database's disk, so evidence an attacker of the
backup cannot rewrite) cut at the backup's head, or the given one, or, when neither exists,
the copy inside the backup (weaker: it travels with what it vouches for).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import tarfile
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import db
from core.audit import checkpoints as audit_checkpoints
from core.audit import record as audit
from core.audit.verify import verify_chain
from core.errors import Conflict, ValidationError
from core.ops.backup import (
    CHECKPOINTS,
    MANIFEST,
    Manifest,
    checkpoint_lines,
    file_sha256,
    libpq_target,
    pg_tool,
    postgres_facts,
    signed_bytes,
    sqlite_facts,
)
from core.permissions import Actor, Permission, require
from core.settings import settings


@dataclass
class VerifyReport:
    manifest: Manifest | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    events: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def read_manifest(archive: tarfile.TarFile) -> Manifest:
    try:
        member = archive.extractfile(MANIFEST)
        values = json.loads(member.read()) if member is not None else None
    except (KeyError, ValueError):
        values = None
    if not isinstance(values, dict) or values.get("database") not in ("sqlite", "postgresql"):
        raise ValidationError("not a Quorum backup: its manifest.json is missing or unreadable")
    return Manifest(values)


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r")
    except (OSError, tarfile.TarError) as error:
        raise ValidationError(f"cannot read the backup {path}: {error}") from None


def _extract(archive: tarfile.TarFile, name: str, into: Path) -> Path:
    member = archive.extractfile(name)
    if member is None:
        raise ValidationError(f"the backup has no {name}")
    target = into / name
    with target.open("wb") as out:
        while block := member.read(1 << 20):
            out.write(block)
    return target


# ---- restore -------------------------------------------------------------------------------


def restore_backup(*, actor: Actor, path: Path, url: str | None = None) -> Manifest:
    """Restore `path` into the configured database (or `url`), which must hold no rows."""
    require(actor, Permission.AUDIT_VERIFY)
    require(actor, Permission.TEAM_MANAGE)
    url = url or settings().database_url
    with _open(Path(path)) as archive, tempfile.TemporaryDirectory(prefix="quorum-restore-") as work:
        manifest = read_manifest(archive)
        dump = _extract(archive, manifest.dump_name, Path(work))
        if file_sha256(dump) != manifest.values["dump"]["sha256"]:
            raise ValidationError("the backup's database dump does not match its manifest (changed or damaged)")
        _load(manifest, dump, url, refuse_rows=True)
    engine = db.make_engine(url)
    try:
        with Session(engine.execution_options(quorum_write=True)) as session, audit.committing(session):
            audit.record(
                session,
                actor=actor,
                action="backup.restore",
                target_type="database",
                target_id=manifest.values["database"],
                after={"created_at": manifest.values["created_at"], "audit_head_seq": manifest.head_seq},
            )
    finally:
        engine.dispose()
    db.dispose_engines()  # no pooled connection remembers the database before the restore
    return manifest


def _load(manifest: Manifest, dump: Path, url: str, *, refuse_rows: bool) -> None:
    kind = manifest.values["database"]
    if not url.startswith(kind):
        raise ValidationError(f"a {kind} backup restores into a {kind} database, not {make_url(url).drivername}")
    if refuse_rows:
        _refuse_rows(url)
    db.dispose_engines()
    if kind == "sqlite":
        target_file = db.sqlite_file(url)
        if target_file is None:
            raise ValidationError("restore into a SQLite file, not an in-memory database")
        target_file.parent.mkdir(parents=True, exist_ok=True)
        source, copy = sqlite3.connect(dump), sqlite3.connect(target_file, timeout=30)
        try:
            source.backup(copy)  # replaces every page of the target: its empty schema included
        finally:
            source.close()
            copy.close()
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            # Empty (checked above): an unused migrated schema makes way for the backup's.
            connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()
    target, env = libpq_target(url)
    done = subprocess.run(
        [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
         f"--dbname={target}", str(dump)],
        env=env, capture_output=True, text=True, errors="replace", check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ValidationError(f"pg_restore failed: {done.stderr.strip()[:500]}")


def _refuse_rows(url: str) -> None:
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                tables = connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                ).scalars()
            else:
                tables = connection.exec_driver_sql(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                ).scalars()
            for table in list(tables):
                if table == "alembic_version":
                    continue
                if connection.exec_driver_sql(f'SELECT 1 FROM "{table}" LIMIT 1').first() is not None:
                    raise Conflict(
                        f"the target database is not empty ({table} has rows): restore into a new, empty database"
                    )
    finally:
        engine.dispose()


# ---- verify --------------------------------------------------------------------------------


def verify_backup(*, actor: Actor, path: Path, checkpoint_file: Path | None = None) -> VerifyReport:
    """The restore drill: everything `quorum backup verify` checks, as a report (never raises for a finding)."""
    require(actor, Permission.AUDIT_VERIFY)
    with _open(Path(path)) as archive, tempfile.TemporaryDirectory(prefix="quorum-verify-") as work:
        manifest = read_manifest(archive)
        report = VerifyReport(manifest)
        dump = _extract(archive, manifest.dump_name, Path(work))
        if file_sha256(dump) != manifest.values["dump"]["sha256"]:
            report.problems.append("the database dump does not match the manifest's sha256: it was changed or damaged")
            return report
        _check_signature(manifest, report)
        if not report.ok:
            return report  # a forged backup is not restored, not even into a scratch database
        checkpoints = _checkpoints_for(archive, manifest, Path(work), checkpoint_file, report)
        with _scratch(manifest, Path(work)) as url:
            try:
                _load(manifest, dump, url, refuse_rows=False)
            except ValidationError as error:
                report.problems.append(f"the dump does not restore: {error}")
                return report
            engine = db.make_engine(url)
            try:
                _compare(engine, manifest, report)
                with Session(engine) as session:
                    result = verify_chain(session=session, actor=actor, checkpoint_file=checkpoints)
                report.events = result.events
                report.notes += result.notes
                report.problems += result.lines() if not result.ok else []
            finally:
                engine.dispose()
    return report


def _check_signature(manifest: Manifest, report: VerifyReport) -> None:
    signature = manifest.values.get("signature")
    key = audit_checkpoints.public_key()
    if signature is None:
        report.notes.append("the manifest is not signed (no QUORUM_AUDIT_SIGNING_KEY when the backup was made)")
        return
    if key is None:
        report.notes.append("the manifest's signature cannot be checked without QUORUM_AUDIT_PUBLIC_KEY")
        return
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(bytes.fromhex(str(signature)), signed_bytes(manifest.values))
    except (InvalidSignature, ValueError):
        report.problems.append("the manifest's signature does not verify: the backup was changed after it was made")


def _checkpoints_for(
    archive: tarfile.TarFile, manifest: Manifest, work: Path, given: Path | None, report: VerifyReport
) -> Path:
    """The checkpoint lines to verify against, cut at the backup's head (later lines vouch for later events)."""
    source = given or audit_checkpoints.checkpoint_file()
    if source.exists():
        lines = checkpoint_lines(manifest, source)
        report.notes.append(f"audit checkpoints read from {source} (lines up to seq {manifest.head_seq})")
    else:
        lines = _extract(archive, CHECKPOINTS, work).read_bytes()
        report.notes.append(
            f"no checkpoint file at {source}: checked against the copy inside the backup, which travels "
            "with the events it vouches for (point --checkpoints at the off-site copy for a stronger check)"
        )
    cut = work / "checkpoints-at-backup.jsonl"
    cut.write_bytes(lines)
    return cut


class _scratch:
    """A database to restore into and throw away: a temporary SQLite file, or a PostgreSQL database."""

    def __init__(self, manifest: Manifest, work: Path) -> None:
        self.kind, self.work, self.admin_url = manifest.values["database"], work, settings().database_url
        self.name = f"quorum_verify_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.work / 'scratch.db'}"
        if not self.admin_url.startswith("postgresql"):
            raise ValidationError(
                "verifying a PostgreSQL backup needs a PostgreSQL server: set DATABASE_URL to one "
                "(a scratch database is created there and dropped)"
            )
        self._admin(f'CREATE DATABASE "{self.name}"')
        return make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *_exc: object) -> None:
        if self.kind == "postgresql":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(sql)
        finally:
            engine.dispose()


def _compare(engine: Engine, manifest: Manifest, report: VerifyReport) -> None:
    """What the restored database holds against what the manifest says it held."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            raw = connection.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)  # a SQLite engine's driver is pysqlite
            found = sqlite_facts(raw)
        else:
            with connection.begin():
                found = postgres_facts(connection)
        connection.execute(text("SELECT 1"))
    expected = manifest.values
    for name in ("schema_revision", "audit_head", "ledger_spend_micro"):
        if found[name] != expected[name]:
            report.problems.append(
                f"{name}: the manifest says {expected[name]!r}, the restored database {found[name]!r}"
            )
    for table, count in sorted(expected["row_counts"].items()):
        restored = found["row_counts"].get(table)
        if restored != count:
            report.problems.append(f"table {table}: the manifest counts {count} rows, the restored database {restored}")
