"""Releases: the ledger's unit becomes a release (a set of images by digest and a template).

Every image gets a one-member release (member `app`, same id as the image) and every ledger
row (promotions, approvals, deployments, verifications, rollouts) points at it through
`release_id`. The GitLab deployments the service follows point at releases too. The environment
history (`releases` until now) is renamed `rollouts`, and the
target-record strings named `release_id` until now are renamed `record_id`.

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

from promotion_service.domain.releases import DEFAULT_MEMBER, Member, identity

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

IN_FLIGHT = "state IN ('deployed', 'deploying', 'requested', 'triggered')"
# table -> (its index on (image_id, ...) and columns after image_id, unique, where)
LEDGER = {
    "promotions": ("uq_promotions_in_flight", ["environment_id"], True, IN_FLIGHT),
    "approvals": ("uq_approvals_standing", ["environment_id", "actor"], True,
                  "withdrawn_at IS NULL"),
    "deployments": ("ix_deployments_{}_env", ["environment_id"], False, None),
    "verifications": ("ix_verifications_{}_env", ["environment_id"], False, None),
    "rollouts": (None, [], False, None),
    "gitlab_deployments": (None, [], False, None),
}
NULLABLE = ("gitlab_deployments",)
RECORDS = ("promotions", "deployments", "rollouts")  # their release_id strings -> record_id


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_releases_environment_id_id", table_name="releases")
    op.rename_table("releases", "rollouts")
    if postgres:
        op.execute("ALTER SEQUENCE releases_id_seq RENAME TO rollouts_id_seq")
        op.execute("ALTER TABLE rollouts RENAME CONSTRAINT pk_releases TO pk_rollouts")
        for column, parent in (("deployment_id", "deployments"), ("environment_id",
                                                                  "environments"),
                               ("image_id", "images"), ("promotion_id", "promotions")):
            op.execute(f"ALTER TABLE rollouts RENAME CONSTRAINT fk_releases_{column}_{parent} "
                       f"TO fk_rollouts_{column}_{parent}")
    op.create_index("ix_rollouts_environment_id_id", "rollouts", ["environment_id", "id"])
    _create_release_tables()
    _one_member_release_per_image(postgres)
    for table, (index, rest, unique, where) in LEDGER.items():
        _point_at_releases(table, index, rest, unique, where, postgres)


def _create_release_tables() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("template_hash", sa.String(length=71), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("commit_sha", sa.String(length=64), nullable=True),
        sa.Column("commit_time", sa.DateTime(), nullable=True),
        sa.Column("ref", sa.String(length=255), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("pipeline_id", sa.BigInteger(), nullable=True),
        sa.Column("pipeline_url", sa.Text(), nullable=True),
        sa.Column("triggered_by", sa.String(length=255), nullable=True),
        sa.Column("commit_author", sa.String(length=255), nullable=True),
        sa.Column("registered_by", sa.String(length=255), nullable=False),
        sa.Column("registered_via", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"],
                                name="fk_releases_project_id_projects", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_releases"),
        sa.UniqueConstraint("digest", name="uq_releases_digest"),
    )
    op.create_index("ix_releases_project_id_id", "releases", ["project_id", "id"])
    op.create_table(
        "release_members",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("built", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"],
                                name="fk_release_members_image_id_images", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"],
                                name="fk_release_members_release_id_releases",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("release_id", "name", name="pk_release_members"),
    )
    op.create_index("ix_release_members_image_id", "release_members", ["image_id"])


def _one_member_release_per_image(postgres: bool) -> None:
    """Release n is image n's one-member release, so ledger rows keep their number."""
    conn = op.get_bind()
    images = conn.execute(sa.text(
        "SELECT id, project_id, repository, digest, commit_sha, commit_time, ref, tags, "
        "pipeline_id, pipeline_url, triggered_by, commit_author, registered_by, "
        "registered_via, created_at, revoked_at, revoked_reason FROM images ORDER BY id"
    )).mappings().all()
    releases = sa.table("releases", sa.column("tags", sa.JSON()), *(sa.column(c) for c in (
        "id", "project_id", "digest", "template_hash", "member_count", "commit_sha",
        "commit_time", "ref", "pipeline_id", "pipeline_url", "triggered_by", "commit_author",
        "registered_by", "registered_via", "created_at", "revoked_at", "revoked_reason")))
    members = sa.table("release_members", *(sa.column(c) for c in (
        "release_id", "name", "image_id", "repository", "digest", "built")))
    rows, member_rows = [], []
    for image in images:
        member = Member(DEFAULT_MEMBER, image["repository"], image["digest"], True)
        row = {k: image[k] for k in (
            "project_id", "commit_sha", "commit_time", "ref", "pipeline_id", "pipeline_url",
            "triggered_by", "commit_author", "registered_by", "registered_via", "created_at",
            "revoked_at")}
        row.update(id=image["id"], digest=identity([member], None), template_hash=None,
                   member_count=1, tags=_json(image["tags"]),
                   revoked_reason=(f"{DEFAULT_MEMBER} was revoked: {image['revoked_reason']}"
                                   if image["revoked_at"] is not None else None))
        rows.append(row)
        member_rows.append({"release_id": image["id"], "name": DEFAULT_MEMBER,
                            "image_id": image["id"], "repository": image["repository"],
                            "digest": image["digest"], "built": True})
    if rows:
        op.bulk_insert(releases, rows)
        op.bulk_insert(members, member_rows)
    if postgres:
        op.execute("SELECT setval(pg_get_serial_sequence('releases', 'id'), "
                   "(SELECT COALESCE(MAX(id), 0) + 1 FROM releases), false)")


def _json(value: object) -> list:
    """A JSON column read through text(): a string on SQLite, a list on PostgreSQL."""
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else list(value)  # type: ignore[arg-type]


def _point_at_releases(table: str, index: str | None, rest: list[str], unique: bool,
                       where: str | None, postgres: bool) -> None:
    if index is not None:
        op.drop_index(index.format("image"), table_name=table)
    if table in RECORDS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column("release_id", new_column_name="record_id",
                               existing_type=sa.String(length=64))
    op.add_column(table, sa.Column("release_id", sa.Integer(), nullable=True))
    op.execute(f"UPDATE {table} SET release_id = image_id")
    with op.batch_alter_table(table) as batch:
        batch.drop_column("image_id")  # and its foreign key, on both databases
        batch.alter_column("release_id", existing_type=sa.Integer(),
                           nullable=table in NULLABLE)
        batch.create_foreign_key(f"fk_{table}_release_id_releases", "releases",
                                 ["release_id"], ["id"], ondelete="CASCADE")
    if index is not None:
        kw = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        op.create_index(index.format("release"), table, ["release_id", *rest], unique=unique,
                        **kw)


def downgrade() -> None:
    """Back to images: one-member releases map to their image; rows about larger releases go."""
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, (index, rest, unique, where) in LEDGER.items():
        if index is not None:
            op.drop_index(index.format("release"), table_name=table)
        op.execute(f"DELETE FROM {table} WHERE release_id IN (SELECT id FROM releases "
                   "WHERE member_count > 1)")
        op.add_column(table, sa.Column("image_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET image_id = (SELECT m.image_id FROM release_members m "
                   f"WHERE m.release_id = {table}.release_id)")
        with op.batch_alter_table(table) as batch:
            batch.drop_column("release_id")
            batch.alter_column("image_id", existing_type=sa.Integer(),
                               nullable=table in NULLABLE)
            batch.create_foreign_key(f"fk_{table}_image_id_images", "images", ["image_id"],
                                     ["id"], ondelete="CASCADE")
        if table in RECORDS:
            with op.batch_alter_table(table) as batch:
                batch.alter_column("record_id", new_column_name="release_id",
                                   existing_type=sa.String(length=64))
        if index is not None:
            kw = ({"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
                  if where else {})
            op.create_index(index.format("image"), table, ["image_id", *rest], unique=unique,
                            **kw)
    op.drop_index("ix_release_members_image_id", table_name="release_members")
    op.drop_table("release_members")
    op.drop_index("ix_releases_project_id_id", table_name="releases")
    op.drop_table("releases")
    op.drop_index("ix_rollouts_environment_id_id", table_name="rollouts")
    if postgres:
        for column, parent in (("deployment_id", "deployments"), ("environment_id",
                                                                  "environments"),
                               ("image_id", "images"), ("promotion_id", "promotions")):
            op.execute(f"ALTER TABLE rollouts RENAME CONSTRAINT fk_rollouts_{column}_{parent} "
                       f"TO fk_releases_{column}_{parent}")
        op.execute("ALTER TABLE rollouts RENAME CONSTRAINT pk_rollouts TO pk_releases")
        op.execute("ALTER SEQUENCE rollouts_id_seq RENAME TO releases_id_seq")
    op.rename_table("rollouts", "releases")
    op.create_index("ix_releases_environment_id_id", "releases", ["environment_id", "id"])
