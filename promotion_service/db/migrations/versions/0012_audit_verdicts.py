"""The verdicts of full walks of the audit chain (`audit verify`, the worker's periodic one),
so that the audit page checks only the entries written since the latest instead of walking
the whole log on every view. A new table: nothing else changes, the log included.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("through_id", sa.Integer(), nullable=True),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("checkpoints", sa.Integer(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("problem_entry_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_verdicts")),
    )


def downgrade() -> None:
    op.drop_table("audit_verdicts")
