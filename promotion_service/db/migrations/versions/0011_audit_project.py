"""Each audit entry records the project it is about, so a project-scoped token's audit list
reads one range of an index (project_id, id) instead of testing every entry's subject.

The backfill gives the entries written before this revision the project their subject
belongs to now, which is what a project-scoped token was shown until now. It is the one
write this migration makes to the audit log, which refuses UPDATE: the migration runs as the
role that owns the log (PROMOTION_DATABASE_OWNER_URL), turns the refusal off for the backfill
only, and back on, in the migration's transaction. On PostgreSQL the ALTER TABLEs hold the
log's lock until the commit, so nobody else reads or writes it meanwhile; a failure rolls the
whole revision back, triggers included. project_id is not among the hashed fields: every chain
verifies as before.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SUBJECT = "CAST(audit_log.subject_id AS BIGINT)"
# subject type -> the project of the subject whose id is _SUBJECT (other types: no project)
_PROJECT_OF = {
    "project": f"SELECT id FROM projects WHERE id = {_SUBJECT}",
    "environment": f"SELECT project_id FROM environments WHERE id = {_SUBJECT}",
    "image": f"SELECT project_id FROM images WHERE id = {_SUBJECT}",
    "release": f"SELECT project_id FROM releases WHERE id = {_SUBJECT}",
    "promotion": "SELECT r.project_id FROM promotions p JOIN releases r ON r.id = p.release_id "
                 f"WHERE p.id = {_SUBJECT}",
    "deployment": "SELECT r.project_id FROM deployments d JOIN releases r "
                  f"ON r.id = d.release_id WHERE d.id = {_SUBJECT}",
}
# subject ids as the service writes them (a number without leading zeros), so that the CAST
# cannot fail and matches exactly the ids a text comparison matched
_AN_ID = {
    "postgresql": "audit_log.subject_id ~ '^[1-9][0-9]{0,17}$'",
    "sqlite": "audit_log.subject_id GLOB '[1-9]*' AND audit_log.subject_id NOT GLOB "
              "'*[^0-9]*' AND length(audit_log.subject_id) <= 18",
}
_SQLITE_NO_UPDATE = ("CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                     "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":  # its DDL would commit on its own; one transaction, as on PostgreSQL
        op.execute("SAVEPOINT audit_project")
    op.add_column("audit_log", sa.Column("project_id", sa.Integer(), nullable=True))
    op.create_index("ix_audit_log_project_id_id", "audit_log", ["project_id", "id"])
    if dialect == "postgresql":
        op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    else:
        op.execute("DROP TRIGGER audit_log_no_update")
    for kind, project_of in _PROJECT_OF.items():
        op.execute(f"UPDATE audit_log SET project_id = ({project_of}) "
                   f"WHERE subject_type = '{kind}' AND {_AN_ID[dialect]}")
    if dialect == "postgresql":
        op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    else:
        op.execute(_SQLITE_NO_UPDATE)
        op.execute("RELEASE audit_project")


def downgrade() -> None:
    op.drop_index("ix_audit_log_project_id_id", table_name="audit_log")
    op.drop_column("audit_log", "project_id")
