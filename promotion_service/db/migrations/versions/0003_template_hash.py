"""The rendered template's hash on deployments and approvals: a changed template needs
approving again.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("template_hash", sa.String(length=71), nullable=True))
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("template_hash", sa.String(length=71), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("template_hash")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("template_hash")
