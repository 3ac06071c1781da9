"""Schema migrations (alembic, packaged in promotion_service/db/migrations)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
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
