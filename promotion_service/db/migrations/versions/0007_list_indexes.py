"""Indexes for the lists' filters, so none reads a large table end to end.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_REVOKED = sa.text("revoked_at IS NOT NULL")
# (name, table, columns, partial condition)
INDEXES = (
    ("ix_images_revoked", "images", ["id"], _REVOKED),
    ("ix_releases_commit_sha", "releases", ["commit_sha"], None),
    ("ix_releases_revoked", "releases", ["id"], _REVOKED),
    ("ix_release_members_repository_digest", "release_members", ["repository", "digest"],
     None),
    ("ix_promotions_release_id_id", "promotions", ["release_id", "id"], None),
    ("ix_audit_log_action_id", "audit_log", ["action", "id"], None),
    ("ix_audit_log_actor_id", "audit_log", ["actor", "id"], None),
)


def upgrade() -> None:
    for name, table, columns, where in INDEXES:
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
