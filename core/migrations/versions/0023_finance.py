"""finance: reconciliation with the provider's bill, closed months, team cost centers

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-27

Reconciliation runs and their lines, a lease for running it from cron on several
servers, closed months with their reopen requests, and a cost-center code per team
(empty for existing teams until an admin sets it).
"""

import sqlalchemy as sa
from alembic import op

from core.models.types import UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _big(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_center", sa.String(length=40), nullable=False, server_default=""))
    op.create_table(
        "reconciliation_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _big("quorum_micro"),
        _big("provider_micro"),
        _big("bypass_micro"),
        _big("bypass_tokens"),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reconciliation_run_day", "reconciliation_run", ["day", "id"], unique=False)
    op.create_table(
        "reconciliation_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("project_id", sa.String(length=80), nullable=False),
        sa.Column("api_key_id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        *(
            _big(name)
            for name in (
                "quorum_input_tokens",
                "quorum_cached_tokens",
                "quorum_output_tokens",
                "provider_input_tokens",
                "provider_cached_tokens",
                "provider_output_tokens",
                "quorum_micro",
                "provider_micro",
            )
        ),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reconciliation_line_run_id"), "reconciliation_line", ["run_id"], unique=False)
    op.create_table(
        "finance_lock",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=80), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "closed_month",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("start_at", UtcDateTime(), nullable=False),
        sa.Column("end_at", UtcDateTime(), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=False),
        sa.Column("budgets_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_table(
        "reopen_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_reopen_request_month"), "reopen_request", ["month"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reopen_request_month"), table_name="reopen_request")
    op.drop_table("reopen_request")
    op.drop_table("closed_month")
    op.drop_table("finance_lock")
    op.drop_index(op.f("ix_reconciliation_line_run_id"), table_name="reconciliation_line")
    op.drop_table("reconciliation_line")
    op.drop_index("ix_reconciliation_run_day", table_name="reconciliation_run")
    op.drop_table("reconciliation_run")
    with op.batch_alter_table("team", schema=None) as batch_op:
        batch_op.drop_column("cost_center")
