"""The restore drill: back up while calls go on, restore into a fresh database, verify; tampering fails verify.

Runs on the test run's database, SQLite or PostgreSQL (conftest.py), so on both in CI.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import uuid

import openai
import pytest
from sqlalchemy import create_engine, make_url, text

from core.audit import checkpoints
from core.cli.main import main
from core.errors import Conflict
from core.gateway import policies
from core.ops import backup, restore
from core.settings import reset_settings
from tests.gateway_support import ADMIN, HELLO, MODEL, client, new_key, team_id


@pytest.fixture
def signed(monkeypatch):
    private, public = checkpoints.new_key_pair()
    monkeypatch.setenv("QUORUM_AUDIT_SIGNING_KEY", private)
    monkeypatch.setenv("QUORUM_AUDIT_PUBLIC_KEY", public)
    reset_settings()


@pytest.fixture
def fresh_url(db_url, tmp_path):
    """A new, empty database beside the test's own (a file, or a PostgreSQL database dropped afterwards)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"{make_url(db_url).database}_restored_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield make_url(db_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


class Traffic:
    """Calls through the gateway, one after another, until stopped."""

    def __init__(self, server, key) -> None:
        self.client, self.answered, self.stop = client(server, key), 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.client.chat.completions.create(model=MODEL, messages=HELLO)
            self.answered += 1

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join(30)


def _rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def _seeded_with_traffic(server, session, path):
    """Seed, call, checkpoint, and back up while calls are still being made; the manifest."""
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), pii_action="redact", moderation="off"
    )
    key = new_key(session)
    for _ in range(5):
        client(server, key).chat.completions.create(model=MODEL, messages=HELLO)
    checkpoints.create_checkpoint(session=session, actor=ADMIN)
    with Traffic(server, key) as traffic:
        while traffic.answered < 3:
            pass
        manifest = backup.create_backup(actor=ADMIN, path=path)
        answered_at_backup = traffic.answered
        while traffic.answered < answered_at_backup + 3:  # calls after the backup's moment
            pass
    checkpoints.create_checkpoint(session=session, actor=ADMIN)  # vouches for events the backup lacks
    return manifest


def test_a_backup_made_under_traffic_restores_what_it_held(
    server, gateway, session, directory, signed, db_url, fresh_url, tmp_path
):
    path = tmp_path / "quorum.backup"
    manifest = _seeded_with_traffic(server, session, path)
    source_calls = dict(_rows(db_url, "SELECT request_id, cost_micro FROM usage_record"))
    assert manifest.values["signature"] and manifest.head_seq > 0

    restored = restore.restore_backup(actor=ADMIN, path=path, url=fresh_url)
    assert restored.values == manifest.values
    tables = manifest.values["row_counts"]
    counts = {table: _rows(fresh_url, f'SELECT COUNT(*) FROM "{table}"')[0][0] for table in tables}
    # As at the backup's moment, plus the restore's own audit event.
    assert counts == {**tables, "audit_event": tables["audit_event"] + 1}
    assert len(source_calls) > manifest.values["row_counts"]["usage_record"]  # calls went on after the backup
    restored_calls = dict(_rows(fresh_url, "SELECT request_id, cost_micro FROM usage_record"))
    assert restored_calls.items() <= source_calls.items()
    assert sum(restored_calls.values()) == manifest.values["ledger_spend_micro"] > 0
    # The same chain up to the backup's head, event for event.
    upto = f"SELECT seq, hash FROM audit_event WHERE seq <= {manifest.head_seq} ORDER BY seq"
    assert _rows(fresh_url, upto) == _rows(db_url, upto)
    [(action,)] = _rows(fresh_url, f"SELECT action FROM audit_event WHERE seq = {manifest.head_seq + 1}")
    assert action == "backup.restore"

    report = restore.verify_backup(actor=ADMIN, path=path)
    assert report.ok, report.problems
    assert report.events == manifest.head_seq


def test_a_restore_refuses_a_database_that_holds_rows(server, gateway, session, directory, db_url, tmp_path):
    path = tmp_path / "quorum.backup"
    backup.create_backup(actor=ADMIN, path=path)
    with pytest.raises(Conflict, match="not empty"):
        restore.restore_backup(actor=ADMIN, path=path, url=db_url)
    assert _rows(db_url, "SELECT COUNT(*) FROM team")[0][0] > 0  # untouched


def _rewrite(path, name: str, change) -> None:
    """The archive with member `name` replaced by `change(bytes)` (and the manifest by a new one if given)."""
    with tarfile.open(path) as archive:
        members = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    members.update(change(members))
    with tarfile.open(path, "w") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def test_a_changed_dump_fails_verify(server, gateway, session, directory, signed, tmp_path, capsys):
    path = tmp_path / "quorum.backup"
    manifest = backup.create_backup(actor=ADMIN, path=path)
    _rewrite(path, manifest.dump_name, lambda m: {manifest.dump_name: _flip_byte(m[manifest.dump_name])})
    assert main(["backup", "verify", str(path)]) == 1
    assert "does not match the manifest's sha256" in capsys.readouterr().out


def test_a_changed_dump_with_a_recomputed_hash_fails_the_signature(
    server, gateway, session, directory, signed, tmp_path
):
    path = tmp_path / "quorum.backup"
    manifest = backup.create_backup(actor=ADMIN, path=path)

    def forge(members):
        dump = _flip_byte(members[manifest.dump_name])
        values = {**manifest.values, "dump": {**manifest.values["dump"], "sha256": _sha(dump)}}
        return {manifest.dump_name: dump, backup.MANIFEST: json.dumps(values).encode()}

    _rewrite(path, manifest.dump_name, forge)
    report = restore.verify_backup(actor=ADMIN, path=path)
    assert report.problems == ["the manifest's signature does not verify: the backup was changed after it was made"]


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_an_audit_event_edited_before_the_backup_fails_verify_against_the_checkpoint_file(
    server, gateway, session, directory, signed, db_url, tmp_path, monkeypatch
):
    """An insider edits the database, then a backup is made without the signing key: the manifest
    and the dump agree, and the checkpoint file (kept elsewhere) still catches the edit."""
    policies.set_team_policy(
        session=session, actor=ADMIN, team_id=team_id(session), pii_action="redact", moderation="off"
    )
    checkpoints.create_checkpoint(session=session, actor=ADMIN)
    session.execute(text("UPDATE audit_event SET actor = 'system:nobody' WHERE seq = 2"))
    session.commit()
    monkeypatch.delenv("QUORUM_AUDIT_SIGNING_KEY")
    reset_settings()
    path = tmp_path / "quorum.backup"
    assert "signature" not in backup.create_backup(actor=ADMIN, path=path).values
    report = restore.verify_backup(actor=ADMIN, path=path)
    assert not report.ok
    assert any("seq 2" in problem for problem in report.problems), report.problems
    assert any("manifest is not signed" in note for note in report.notes)


def test_the_cli_backs_up_and_verifies(server, gateway, session, directory, tmp_path, capsys):
    with pytest.raises(openai.APIStatusError):  # a refused call is in the backup too
        client(server, "sk-not-a-key").chat.completions.create(model=MODEL, messages=HELLO)
    path = tmp_path / "nightly" / "quorum.backup"
    assert main(["backup", "create", str(path)]) == 0
    assert "backup written to" in capsys.readouterr().out
    assert main(["backup", "verify", str(path)]) == 0
    out = capsys.readouterr()
    assert "backup verified" in out.out and "audit events verified" in out.out
    assert main(["backup", "verify", str(tmp_path / "missing.backup")]) == 1
    assert "cannot read the backup" in capsys.readouterr().err
