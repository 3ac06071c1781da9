"""The overview reads each environment's latest deployment: index deployments by
(environment_id, id), as promotions and rollouts already are.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deployments_environment_id_id", "deployments", ["environment_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_deployments_environment_id_id", table_name="deployments")
