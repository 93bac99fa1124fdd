"""prompt catalog

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import core.models.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("risk_tier", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("data_classification", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_name"), ["name"], unique=True)
        batch_op.create_index(batch_op.f("ix_prompt_team_id"), ["team_id"], unique=False)

    op.create_table(
        "prompt_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content_json", sa.Text(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("change_note", sa.Text(), nullable=False),
        sa.Column("author_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("author_person_id", sa.Integer(), nullable=True),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("state_changed_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prompt_id", "number", name="uq_prompt_version_number"),
    )
    with op.batch_alter_table("prompt_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_version_content_hash"), ["content_hash"], unique=False)
        batch_op.create_index("ix_prompt_version_state", ["state"], unique=False)

    op.create_table(
        "prompt_label",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["prompt_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prompt_id", "name", name="uq_prompt_label_name"),
    )
    op.create_table(
        "prompt_label_move",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("from_version_id", sa.Integer(), nullable=True),
        sa.Column("to_version_id", sa.Integer(), nullable=False),
        sa.Column("actor_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("moved_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_version_id"],
            ["prompt_version.id"],
        ),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["to_version_id"],
            ["prompt_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prompt_label_move", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_label_move_prompt_id"), ["prompt_id"], unique=False)

    op.create_table(
        "prompt_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("reviewer_person_id", sa.Integer(), nullable=True),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewer_person_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(["version_id"], ["prompt_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("version_id", "reviewer_ref", name="uq_prompt_review_reviewer"),
    )
    with op.batch_alter_table("prompt_review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_review_version_id"), ["version_id"], unique=False)

    op.create_table(
        "review_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reference_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("attached_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("attached_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["prompt_version.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_evidence_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_evidence_version_id"))

    op.drop_table("review_evidence")
    with op.batch_alter_table("prompt_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_review_version_id"))

    op.drop_table("prompt_review")
    with op.batch_alter_table("prompt_label_move", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_label_move_prompt_id"))

    op.drop_table("prompt_label_move")
    op.drop_table("prompt_label")
    with op.batch_alter_table("prompt_version", schema=None) as batch_op:
        batch_op.drop_index("ix_prompt_version_state")
        batch_op.drop_index(batch_op.f("ix_prompt_version_content_hash"))

    op.drop_table("prompt_version")
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_team_id"))
        batch_op.drop_index(batch_op.f("ix_prompt_name"))

    op.drop_table("prompt")
