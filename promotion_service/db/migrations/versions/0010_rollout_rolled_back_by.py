"""Rollouts say who rolled them back and why (the history a rollback leaves); an index finds
a release's rollouts (the gate asks whether it was rolled back out of an earlier environment).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("rolled_back_by", sa.String(255), nullable=True))
        batch.add_column(sa.Column("rolled_back_reason", sa.Text(), nullable=True))
    op.create_index("ix_rollouts_release_env_id", "rollouts",
                    ["release_id", "environment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_rollouts_release_env_id", table_name="rollouts")
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("rolled_back_reason")
        batch.drop_column("rolled_back_by")
