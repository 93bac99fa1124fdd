"""Schema migrations with alembic, applied by `quorum db upgrade` and at app start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from core.db import dispose_engines, get_engine, make_engine, sqlite_file
from core.settings import settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Hand the engine to env.py directly: URLs with '%' would trip the ini interpolation.
    config.attributes["engine"] = get_engine(url)
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database to `revision` (idempotent)."""
    command.upgrade(alembic_config(url), revision)


def recreate(url: str) -> None:
    """An empty database at the newest schema, for benchmarks and test runs: a SQLite file is
    deleted with its WAL, PostgreSQL's public schema is dropped with everything in it."""
    dispose_engines()  # no pooled connection may outlive what it points at
    file = sqlite_file(url) if url.startswith("sqlite") else None
    if file is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{file}{suffix}").unlink(missing_ok=True)
    elif url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
        engine.dispose()
    upgrade(url)


def current_revision(url: str | None = None) -> str | None:
    engine = get_engine(url)
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


_upgraded: set[str] = set()


def upgrade_once(url: str | None = None) -> None:
    """`upgrade()` the first time a process needs the database, then nothing."""
    key = url or settings().database_url
    if key not in _upgraded:
        upgrade(url)
        _upgraded.add(key)
