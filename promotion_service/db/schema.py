"""Schema migrations (alembic, packaged in promotion_service/db/migrations)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    """An alembic Config for this package's migrations, on the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@lru_cache(maxsize=1)
def schema_head() -> str:
    """The newest migration revision this code ships."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def current_revision(session: Session) -> str | None:
    """The revision the database is at (raises SQLAlchemyError when it has no schema)."""
    return session.scalar(text("SELECT version_num FROM alembic_version"))


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def grant_service_role(owner_url: str, role: str) -> None:
    """PostgreSQL: let `role` (the service's) use the tables `owner_url`'s role owns.

    It reads and writes them, but only appends to the audit log (no UPDATE, DELETE or
    TRUNCATE there), and owns nothing: it cannot drop or disable the audit log's triggers.
    """
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    role = engine.dialect.identifier_preparer.quote(role)
    with engine.begin() as conn:
        for statement in (
            f"GRANT USAGE ON SCHEMA {_schema(conn)} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {_schema(conn)} "
            f"TO {role}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_schema(conn)} TO {role}",
            f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {role}",
            f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
        ):
            conn.execute(text(statement))
    engine.dispose()


def _schema(conn: Connection) -> str:
    return conn.dialect.identifier_preparer.quote(
        conn.execute(text("SELECT current_schema()")).scalar() or "public")


def role_of(url: str) -> str | None:
    """The database user a URL connects as."""
    return make_url(url).username


def service_can_bypass_audit(engine: Engine) -> bool:
    """PostgreSQL: the service's role owns the audit log or is a superuser, so it could
    disable the triggers that keep the log append-only."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT r.rolsuper OR t.tableowner = current_user FROM pg_roles r "
            "LEFT JOIN pg_tables t ON t.tablename = 'audit_log' AND "
            "t.schemaname = current_schema() WHERE r.rolname = current_user")).scalar())
