"""GitLab integration: webhook deliveries, merge-request checks, GitLab deployments.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("gitlab_project_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("key", name=op.f("uq_webhook_deliveries_key")),
    )
    op.create_table(
        "merge_request_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gitlab_project_id", sa.BigInteger(), nullable=False),
        sa.Column("project_path", sa.String(length=255), nullable=False),
        sa.Column("mr_iid", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.BigInteger(), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=255), nullable=True),
        sa.Column("mr_url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("answered", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_request_checks")),
        sa.UniqueConstraint(
            "gitlab_project_id", "mr_iid", "check_id", name="uq_mr_checks_mr_check"
        ),
    )
    op.create_index("ix_merge_request_checks_sha", "merge_request_checks", ["sha"])
    op.create_table(
        "gitlab_deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gitlab_project_id", sa.BigInteger(), nullable=False),
        sa.Column("deployment_id", sa.BigInteger(), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("sha", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("environment_id", sa.Integer(), nullable=True),
        sa.Column("service_deployment_id", sa.Integer(), nullable=True),
        sa.Column("mirrored_approvals", sa.JSON(), nullable=False),
        sa.Column("played_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], ondelete="CASCADE",
            name=op.f("fk_gitlab_deployments_image_id_images"),
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"], ["environments.id"], ondelete="CASCADE",
            name=op.f("fk_gitlab_deployments_environment_id_environments"),
        ),
        sa.ForeignKeyConstraint(
            ["service_deployment_id"], ["deployments.id"],
            name=op.f("fk_gitlab_deployments_service_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gitlab_deployments")),
        sa.UniqueConstraint(
            "gitlab_project_id", "deployment_id", name="uq_gitlab_deployments_id"
        ),
    )
    op.create_index(
        "ix_gitlab_deployments_status", "gitlab_deployments", ["status", "environment_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_gitlab_deployments_status", table_name="gitlab_deployments")
    op.drop_table("gitlab_deployments")
    op.drop_index("ix_merge_request_checks_sha", table_name="merge_request_checks")
    op.drop_table("merge_request_checks")
    op.drop_table("webhook_deliveries")
