"""Identity and releases: tokens belong to persons, approvals remember their token, images
their commit author, deployments and releases the target's release ids.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("person", sa.String(length=255), nullable=True))
    # a token's person is its name, case-folded (one identity per person from now on)
    op.execute("UPDATE tokens SET person = LOWER(TRIM(name))")
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("person", existing_type=sa.String(length=255), nullable=False)
    op.create_index("ix_tokens_person", "tokens", ["person"])

    # the token an approval was given with (tokens are revoked, never deleted)
    op.add_column("approvals", sa.Column("token_id", sa.Integer(), nullable=True))
    op.add_column("approvals", sa.Column("given_in", sa.String(length=16), nullable=False,
                                         server_default="service"))
    op.execute("UPDATE approvals SET given_in = 'gitlab' WHERE actor LIKE 'gitlab:%'")
    # GitLab's `gitlab:alice` is the person alice: where alice also stands on the same image
    # and environment, one of the two goes (a person counts once)
    op.execute(
        "UPDATE approvals SET withdrawn_at = CURRENT_TIMESTAMP, withdrawn_by = 'migration 0004' "
        "WHERE actor LIKE 'gitlab:%' AND withdrawn_at IS NULL AND EXISTS (SELECT 1 FROM "
        "approvals b WHERE b.image_id = approvals.image_id AND b.environment_id = "
        "approvals.environment_id AND b.withdrawn_at IS NULL AND LOWER(b.actor) = "
        "LOWER(SUBSTR(approvals.actor, 8)))")
    op.execute("UPDATE approvals SET actor = LOWER(SUBSTR(actor, 8)) WHERE actor LIKE 'gitlab:%'")

    op.add_column("images", sa.Column("commit_author", sa.String(length=255), nullable=True))
    op.add_column("images", sa.Column("registered_via", sa.String(length=16), nullable=True))
    for table in ("deployments", "releases"):
        op.add_column(table, sa.Column("release_id", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("rollback_of", sa.String(length=64), nullable=True))
    op.add_column("promotions", sa.Column("release_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("promotions", "release_id")
    for table in ("releases", "deployments"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("rollback_of")
            batch.drop_column("release_id")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("registered_via")
        batch.drop_column("commit_author")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("given_in")
        batch.drop_column("token_id")
    op.drop_index("ix_tokens_person", table_name="tokens")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("person")
