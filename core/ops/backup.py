"""`quorum backup create`: the whole database in one file, with a manifest that says what is in it.

A backup is a tar archive of three members:

- ``database.sqlite`` (SQLite's online backup API: a consistent copy while calls go on) or
  ``database.pgdump`` (``pg_dump`` in its custom format, from an exported snapshot);
- ``manifest.json``: the schema revision, the row count of every table, the spend in the
  ledger, the audit chain's head (seq and hash) and newest checkpoint, all read from the
  very snapshot that was dumped, and the dump's sha256; signed with the audit signing key
  when one is set, so that a backup edited and re-hashed still fails `backup verify`;
- ``audit-checkpoints.jsonl``: the checkpoint file's lines up to the backup's head, for a
  restore after the disk that held the file was lost too.

The file is written next to its final name and renamed into place: a backup that was cut
short never looks like one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import make_url
from sqlalchemy.engine import Connection

from core import clock, db
from core.audit import checkpoints as audit_checkpoints
from core.errors import ValidationError
from core.permissions import Actor, Permission, require
from core.settings import settings

FORMAT = 1
MANIFEST = "manifest.json"
CHECKPOINTS = "audit-checkpoints.jsonl"
DUMPS = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}


@dataclass(frozen=True)
class Manifest:
    values: dict[str, Any]

    @property
    def head_seq(self) -> int:
        head = self.values["audit_head"]
        return int(head["seq"]) if head else 0

    @property
    def dump_name(self) -> str:
        return DUMPS[self.values["database"]]

    def summary(self) -> str:
        rows = sum(self.values["row_counts"].values())
        checkpoint = self.values["newest_checkpoint"]
        return (
            f"{self.values['database']} at schema {self.values['schema_revision']}, {rows} rows in "
            f"{len(self.values['row_counts'])} tables, audit head at seq {self.head_seq}"
            + (f", newest checkpoint at seq {checkpoint['seq']}" if checkpoint else ", no checkpoint yet")
        )


def signed_bytes(values: dict[str, Any]) -> bytes:
    """What the manifest's signature covers: every field but the signature, canonically."""
    unsigned = {k: v for k, v in values.items() if k not in ("signature", "signing_key_id")}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def create_backup(*, actor: Actor, path: Path, url: str | None = None) -> Manifest:
    """Back the configured database (or `url`) up into `path`; returns the manifest written."""
    require(actor, Permission.AUDIT_VERIFY)
    url = url or settings().database_url
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ValidationError(f"{path} is a directory; name the backup file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quorum-backup-", dir=path.parent) as work:
        if url.startswith("sqlite"):
            database = "sqlite"
            dump = Path(work) / DUMPS[database]
            facts = _sqlite_snapshot(url, dump)
        elif url.startswith("postgresql"):
            database = "postgresql"
            dump = Path(work) / DUMPS[database]
            facts = _postgres_snapshot(url, dump)
        else:
            raise ValidationError(f"cannot back up {make_url(url).drivername} databases (SQLite or PostgreSQL)")
        values = {
            "format": FORMAT,
            "created_at": clock.now().isoformat(),
            "database": database,
            **facts,
            "dump": {"name": dump.name, "bytes": dump.stat().st_size, "sha256": file_sha256(dump)},
        }
        key = audit_checkpoints.signing_key()
        if key is not None:
            values["signing_key_id"] = audit_checkpoints.key_id(key.public_key())
            values["signature"] = key.sign(signed_bytes(values)).hex()
        manifest = Manifest(values)
        partial = path.with_name(f".{path.name}.partial")
        with tarfile.open(partial, "w") as archive:
            _add_bytes(archive, MANIFEST, json.dumps(values, indent=2, sort_keys=True).encode())
            archive.add(dump, arcname=dump.name)
            _add_bytes(archive, CHECKPOINTS, checkpoint_lines(manifest))
        os.replace(partial, path)
    return manifest


def checkpoint_lines(manifest: Manifest, source: Path | None = None) -> bytes:
    """The checkpoint file's lines of the backup's chain up to its head (what the backup can be checked against)."""
    file = source or audit_checkpoints.checkpoint_file()
    head = manifest.values["audit_head"]
    if not file.exists() or not head:
        return b""
    kept = []
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            data = json.loads(line)
            mine = data["chain_id"] == head["chain_id"] and int(data["seq"]) <= int(head["seq"])
        except (ValueError, KeyError, TypeError):
            mine = True  # an unreadable line stays: verification reports it
        if mine and line.strip():
            kept.append(line)
    return "".join(f"{line}\n" for line in kept).encode()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(clock.now().timestamp()), 0o600
    archive.addfile(info, io.BytesIO(data))


# ---- SQLite --------------------------------------------------------------------------------


def _sqlite_snapshot(url: str, dump: Path) -> dict[str, Any]:
    source_file = db.sqlite_file(url)
    if source_file is None or not source_file.exists():
        raise ValidationError(f"no SQLite database at {source_file}")
    source = sqlite3.connect(f"file:{source_file}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dump)
    try:
        # One step (pages=-1): the copy is one consistent snapshot, however busy the writers are.
        source.backup(target)
    finally:
        source.close()
    try:
        # The copy is what was dumped, so everything the manifest says is read from it.
        return sqlite_facts(target)
    finally:
        target.close()


def sqlite_facts(connection: sqlite3.Connection) -> dict[str, Any]:
    tables = [
        str(row[0])
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]

    def one(sql: str) -> tuple[Any, ...] | None:
        row = connection.execute(sql).fetchone()
        return tuple(row) if row is not None else None

    return _facts(tables, lambda table: int(connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]), one)


# ---- PostgreSQL ----------------------------------------------------------------------------


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection string for `url` and the environment to run a client tool with: the
    password goes in PGPASSWORD, never on a command line where `ps` would show it."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ValidationError(f"{name} is not installed: install PostgreSQL's client tools (e.g. postgresql-client)")
    return found


def _postgres_snapshot(url: str, dump: Path) -> dict[str, Any]:
    pg_dump = pg_tool("pg_dump")
    engine = db.make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection:
            with connection.begin():
                # The manifest's counts and pg_dump read the one snapshot this transaction holds.
                snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
                facts = postgres_facts(connection)
                target, env = libpq_target(url)
                done = subprocess.run(
                    [pg_dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                     f"--file={dump}", f"--dbname={target}"],
                    env=env, capture_output=True, text=True, errors="replace", check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise ValidationError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    finally:
        engine.dispose()
    return facts


def postgres_facts(connection: Connection) -> dict[str, Any]:
    # Partitions are counted in their parent (the audit log partitions by month).
    tables = [
        str(name)
        for name in connection.exec_driver_sql(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "ORDER BY c.relname"
        ).scalars()
    ]

    def one(sql: str) -> tuple[Any, ...] | None:
        row = connection.exec_driver_sql(sql).first()
        return tuple(row) if row is not None else None

    return _facts(
        tables, lambda table: int(connection.exec_driver_sql(f'SELECT COUNT(*) FROM "{table}"').scalar() or 0), one
    )


# ---- what the manifest says ----------------------------------------------------------------


def _facts(
    tables: list[str], count: Callable[[str], int], one: Callable[[str], tuple[Any, ...] | None]
) -> dict[str, Any]:
    """The manifest's account of one snapshot: `count(table)` and `one(sql)` read it."""
    present = set(tables)
    revision = one("SELECT version_num FROM alembic_version") if "alembic_version" in present else None
    head = one("SELECT seq, head_hash, chain_id FROM audit_head WHERE id = 1") if "audit_head" in present else None
    checkpoint = (
        one("SELECT seq, head_hash, created_at, verified FROM audit_checkpoint ORDER BY seq DESC, id DESC LIMIT 1")
        if "audit_checkpoint" in present
        else None
    )
    spend = one("SELECT COALESCE(SUM(cost_micro), 0) FROM usage_record") if "usage_record" in present else None
    return {
        "schema_revision": revision[0] if revision else None,
        "row_counts": {table: count(table) for table in tables},
        "ledger_spend_micro": int(spend[0]) if spend else 0,
        "audit_head": {"seq": int(head[0]), "hash": str(head[1]), "chain_id": str(head[2])} if head else None,
        "newest_checkpoint": (
            {
                "seq": int(checkpoint[0]),
                "hash": str(checkpoint[1]),
                "created_at": str(checkpoint[2]),
                "verified": bool(checkpoint[3]),
            }
            if checkpoint
            else None
        ),  # fmt: skip
    }
