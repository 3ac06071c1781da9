"""Migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import promotion_service.db.gitlab_models  # noqa: F401 - its tables belong to the metadata too
from promotion_service.db.models import Base
from promotion_service.db.schema import alembic_config


def test_migrated_schema_matches_the_models(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_first_revision_is_0001_and_downgrades_cleanly(database_url):
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    engine = create_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "0001")
    assert {"promotions", "outbox", "audit_log"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_ready_says_when_the_schema_is_behind(database_url, client):
    assert client.get("/ready").json["status"] == "ready"
    command.downgrade(alembic_config(database_url), "0001")
    resp = client.get("/ready")
    assert resp.status_code == 503 and "promotion-service db upgrade" in resp.json["message"]
