"""audit chain: sequence numbers and hashes on audit events, the chain head, signed checkpoints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import core.models.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("pruned_before", sa.BigInteger(), nullable=True),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoint_seq"), ["seq"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("chain_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    # Nullable first: events written before the chain existed are chained below, in id order.
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    _chain_existing_events()
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("prev_hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch_op.drop_index(batch_op.f("ix_audit_event_action"))
        batch_op.drop_index(batch_op.f("ix_audit_event_actor"))
        batch_op.drop_index(batch_op.f("ix_audit_event_target"))
        batch_op.drop_index(batch_op.f("ix_audit_event_team_id"))
        batch_op.create_index("ux_audit_event_seq", ["seq"], unique=True)
        batch_op.create_index("ix_audit_event_action_seq", ["action", "seq"], unique=False)
        batch_op.create_index("ix_audit_event_actor_seq", ["actor", "seq"], unique=False)
        batch_op.create_index("ix_audit_event_target_seq", ["target_type", "target_id", "seq"], unique=False)
        batch_op.create_index("ix_audit_event_team_seq", ["team_id", "seq"], unique=False)


def _chain_existing_events() -> None:
    import uuid

    from core.audit.chain import GENESIS_HASH, row_hash

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, event_id, occurred_at, actor, action, target_type, target_id, team_id, before_json, "
            "after_json FROM audit_event ORDER BY id"
        )
    ).all()
    prev = GENESIS_HASH
    for seq, row in enumerate(rows, start=1):
        digest = row_hash((*row[1:], prev))
        bind.execute(
            sa.text("UPDATE audit_event SET seq = :s, prev_hash = :p, hash = :h WHERE id = :i"),
            {"s": seq, "p": prev, "h": digest, "i": row[0]},
        )
        prev = digest
    if rows:
        bind.execute(
            sa.text("INSERT INTO audit_head (id, seq, head_hash, chain_id) VALUES (1, :s, :h, :c)"),
            {"s": len(rows), "h": prev, "c": str(uuid.uuid4())},
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_team_seq")
        batch_op.drop_index("ix_audit_event_target_seq")
        batch_op.drop_index("ix_audit_event_actor_seq")
        batch_op.drop_index("ix_audit_event_action_seq")
        batch_op.drop_index("ux_audit_event_seq")
        batch_op.create_index(batch_op.f("ix_audit_event_team_id"), ["team_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_target"), ["target_type", "target_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_action"), ["action"], unique=False)
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("seq")

    op.drop_table("audit_head")
    with op.batch_alter_table("audit_checkpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoint_seq"))

    op.drop_table("audit_checkpoint")
