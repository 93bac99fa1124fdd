"""escalation catches, and test cases that remember the production call they came from

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-27

``escalation_catch`` keeps one row per call a prompt version's escalation rule held,
blocked or queued for review after delivery. A test case made from such a call points at
its stored payload, so retention and erasure of the payload delete the case with it.
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation_catch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("prompt_name", sa.String(length=64), nullable=False),
        sa.Column("prompt_version", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("review_status", sa.String(length=16), nullable=False),
        sa.Column("expected", sa.String(length=4000), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("request_id", "team_id", "prompt_name", "created_at", "review_status"):
        op.create_index(f"ix_escalation_catch_{column}", "escalation_catch", [column])
    with op.batch_alter_table("testset_case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_request_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("source_json", sa.Text(), nullable=True))
        batch_op.create_index("ix_testset_case_source_request_id", ["source_request_id"])
        batch_op.create_foreign_key(
            "fk_testset_case_source_request_id",
            "stored_payload",
            ["source_request_id"],
            ["request_id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("testset_case", schema=None) as batch_op:
        batch_op.drop_constraint("fk_testset_case_source_request_id", type_="foreignkey")
        batch_op.drop_index("ix_testset_case_source_request_id")
        batch_op.drop_column("source_json")
        batch_op.drop_column("source_request_id")
    op.drop_table("escalation_catch")
