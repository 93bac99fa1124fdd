"""Alembic environment: runs against the engine Quorum hands over (see core.migrate)."""

from alembic import context
from sqlmodel import SQLModel

import core.models  # noqa: F401  (registers every table on the metadata)

config = context.config
engine = config.attributes["engine"]
# Gateway hosts of one deployment may all start (and migrate) at once: on PostgreSQL the first
# takes this lock for its migration's transaction; the others wait, then find nothing to do.
MIGRATION_LOCK = 0x51756F72  # "Quor"

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
    connection.commit()
