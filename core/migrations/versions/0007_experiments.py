"""experiments

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-25 17:47:17.741512
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import core.models.types

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("request_feedback", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_feedback_request_id"), ["request_id"], unique=False)

    op.create_table(
        "testset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("pass_threshold", sa.Float(), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("updated_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prompt_id", "name", name="uq_testset_prompt_name"),
    )
    with op.batch_alter_table("testset", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_testset_team_id"), ["team_id"], unique=False)

    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("testset_id", sa.Integer(), nullable=True),
        sa.Column("testset_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("variants_json", sa.Text(), nullable=False),
        sa.Column("repetitions", sa.Integer(), nullable=False),
        sa.Column("judge_model", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("planned_cells", sa.Integer(), nullable=False),
        sa.Column("finished_cells", sa.Integer(), nullable=False),
        sa.Column("estimate_micro", sa.BigInteger(), nullable=False),
        sa.Column("billed_micro", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("results_json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["team.id"],
        ),
        sa.ForeignKeyConstraint(["testset_id"], ["testset.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.create_index("ix_experiment_team_created", ["team_id", "created_at"], unique=False)

    op.create_table(
        "testset_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("testset_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("variables_json", sa.Text(), nullable=False),
        sa.Column("assertions_json", sa.Text(), nullable=False),
        sa.Column("pass_threshold", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["testset_id"], ["testset.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("testset_id", "case_key", name="uq_testset_case_key"),
    )
    with op.batch_alter_table("testset_case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_testset_case_testset_id"), ["testset_id"], unique=False)

    op.create_table(
        "traffic_split",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("version_a_id", sa.Integer(), nullable=False),
        sa.Column("version_b_id", sa.Integer(), nullable=False),
        sa.Column("percent_b", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("approved_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", core.models.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", core.models.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["prompt_id"], ["prompt.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["version_a_id"],
            ["prompt_version.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_b_id"],
            ["prompt_version.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("traffic_split", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_traffic_split_prompt_id"), ["prompt_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("traffic_split", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_traffic_split_prompt_id"))

    op.drop_table("traffic_split")
    with op.batch_alter_table("testset_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_testset_case_testset_id"))

    op.drop_table("testset_case")
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_index("ix_experiment_team_created")

    op.drop_table("experiment")
    with op.batch_alter_table("testset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_testset_team_id"))

    op.drop_table("testset")
    with op.batch_alter_table("request_feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_feedback_request_id"))

    op.drop_table("request_feedback")
