"""Migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import promotion_service.db.gitlab_models  # noqa: F401 - its tables belong to the metadata too
from promotion_service import create_app, db
from promotion_service.db.models import Base, Image
from promotion_service.db.schema import alembic_config
from promotion_service.domain.actor import Actor
from promotion_service.domain.audit_chain import entry_hash
from promotion_service.domain.releases import Member, identity
from promotion_service.services import audit
from promotion_service.services import releases as releases_service
from tests.promotion_service.api.test_audit_scope import mixed_log, seen
from tests.promotion_service.helpers import register
from tests.promotion_service.test_cli import assert_append_only


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


def _previous_revisions_data(conn) -> None:
    """What 0005 held: two images (the second revoked), one walked into staging."""
    now = "2026-11-01 10:00:00"
    rows = [
        ("projects", {"id": 1, "path": "group/app", "created_at": now}),
        ("environments", {"id": 1, "project_id": 1, "name": "test", "position": 0,
                          "policy": "{}"}),
        ("environments", {"id": 2, "project_id": 1, "name": "staging", "position": 1,
                          "policy": "{}"}),
        ("images", {"id": 1, "project_id": 1, "repository": "registry.example.com/group/app",
                    "digest": "sha256:" + "1" * 64, "tags": '["v1"]', "triggered_by": "dev",
                    "registered_by": "ci-bot", "created_at": now}),
        ("images", {"id": 2, "project_id": 1, "repository": "registry.example.com/group/app",
                    "digest": "sha256:" + "2" * 64, "tags": "[]", "registered_by": "ci-bot",
                    "created_at": now, "revoked_at": now, "revoked_reason": "CVE-2026-1"}),
        ("promotions", {"id": 1, "image_id": 1, "environment_id": 2, "state": "verified",
                        "kind": "rollback", "requested_by": "rm", "release_id": "r-1",
                        "created_at": now, "updated_at": now}),
        ("deployments", {"id": 1, "image_id": 1, "environment_id": 2, "promotion_id": 1,
                         "state": "succeeded", "actor": "ci-bot", "release_id": "r-1",
                         "created_at": now, "updated_at": now}),
        ("verifications", {"id": 1, "image_id": 1, "environment_id": 2, "passed": True,
                           "details": "{}", "actor": "ci-bot", "created_at": now}),
        ("approvals", {"id": 1, "image_id": 1, "environment_id": 2, "actor": "alice",
                       "role": "approver", "decision": "approve", "created_at": now}),
        ("releases", {"id": 1, "image_id": 1, "environment_id": 2, "promotion_id": 1,
                      "deployment_id": 1, "release_id": "r-1", "created_at": now}),
    ]
    for table, row in rows:
        conn.execute(text(f"INSERT INTO {table} ({', '.join(row)}) "
                          f"VALUES ({', '.join(':' + k for k in row)})"), row)


def test_0006_gives_each_image_its_one_member_release_and_keeps_the_ledger(database_url):
    """Data written by revision 0005 reads the same after 0006, and back after downgrading."""
    config = alembic_config(database_url)
    command.downgrade(config, "0005")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        _previous_revisions_data(conn)
    command.upgrade(config, "head")
    with engine.connect() as conn:
        releases = conn.execute(text(
            "SELECT id, digest, member_count, triggered_by, revoked_at IS NOT NULL, "
            "revoked_reason FROM releases ORDER BY id")).all()
        members = conn.execute(text(
            "SELECT release_id, name, image_id, built FROM release_members ORDER BY 1")).all()
        ledger = {table: conn.execute(text(f"SELECT release_id FROM {table}")).scalar_one()
                  for table in ("promotions", "deployments", "verifications", "approvals",
                                "rollouts")}
        records = {table: conn.execute(text(f"SELECT record_id FROM {table}")).scalar_one()
                   for table in ("promotions", "deployments", "rollouts")}
    digests = [identity([Member("app", "registry.example.com/group/app", "sha256:" + c * 64)],
                        None) for c in "12"]
    assert [r[:4] for r in releases] == [(1, digests[0], 1, "dev"), (2, digests[1], 1, None)]
    assert [bool(r[4]) for r in releases] == [False, True]
    assert releases[1][5] == "app was revoked: CVE-2026-1"
    assert [(*m[:3], bool(m[3])) for m in members] == [(1, "app", 1, True),
                                                       (2, "app", 2, True)]
    assert set(ledger.values()) == {1} and set(records.values()) == {"r-1"}
    # new rows number on from the migrated ones (PostgreSQL's sequences too)
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    with db.session_for(app) as session:
        release_id, _ = releases_service.ensure(
            session, Actor("ci-bot", "ci", project="group/app"), 1, "group/app",
            [(Member("app", "registry.example.com/group/app", "sha256:" + "1" * 64),
              session.get(Image, 1))], "sha256:" + "3" * 64, {})
    assert release_id == 3
    db.engine_of(app).dispose()

    command.downgrade(config, "0005")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT image_id, release_id FROM promotions")).one() == (
            1, "r-1")
        assert conn.execute(text("SELECT image_id, release_id FROM releases")).one() == (
            1, "r-1")
    engine.dispose()


def test_0007_adds_the_lists_indexes_and_takes_them_back(database_url):
    config = alembic_config(database_url)
    engine = create_engine(database_url)

    def indexes(table: str) -> set[str]:
        return {index["name"] for index in inspect(engine).get_indexes(table)}

    assert {"ix_audit_log_action_id", "ix_audit_log_actor_id"} <= indexes("audit_log")
    command.downgrade(config, "0006")
    assert not {"ix_audit_log_action_id", "ix_audit_log_actor_id"} & indexes("audit_log")
    assert "ix_promotions_release_id_id" not in indexes("promotions")
    command.upgrade(config, "head")
    assert "ix_promotions_release_id_id" in indexes("promotions")
    engine.dispose()


def test_0010_adds_who_rolled_a_rollout_back_and_takes_it_back(database_url):
    config = alembic_config(database_url)
    engine = create_engine(database_url)

    def columns() -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns("rollouts")}

    assert {"rolled_back_by", "rolled_back_reason"} <= columns()
    assert "ix_rollouts_release_env_id" in {i["name"] for i in
                                            inspect(engine).get_indexes("rollouts")}
    command.downgrade(config, "0009")
    assert not {"rolled_back_by", "rolled_back_reason"} & columns()
    command.upgrade(config, "head")
    assert {"rolled_back_by", "rolled_back_reason"} <= columns()
    engine.dispose()


def test_0012_adds_the_audit_verdicts_table_and_takes_it_back(database_url, app, api):
    register(api, 1)
    with db.session_for(app, write=False) as session:
        audit.record(session, audit.verify(session))
    db.engine_of(app).dispose()
    config = alembic_config(database_url)
    engine = create_engine(database_url)
    assert "audit_verdicts" in inspect(engine).get_table_names()
    command.downgrade(config, "0011")
    assert "audit_verdicts" not in inspect(engine).get_table_names()
    with db.session_for(app) as session:
        assert audit.verify(session).problem is None  # the log as it was
    db.engine_of(app).dispose()
    command.upgrade(config, "head")
    with db.session_for(app, write=False) as session:
        assert audit.chain_state(session, None).full is None  # a new, empty table
    engine.dispose()


def test_0011_gives_existing_audit_entries_their_project_and_the_chain_still_verifies(
        database_url, app, api, tokens):
    """Entries written before 0011 get the project the service now writes on each entry (the
    one a project-scoped token was shown); the log stays append-only and its chain intact."""
    mixed_log(api, app)
    scoped = {who: seen(api, who) for who in ("ci-bot", "ci-other")}
    read = text("SELECT id, project_id FROM audit_log ORDER BY id")
    with db.session_for(app) as session:
        written = session.execute(read).all()
    db.engine_of(app).dispose()
    assert {p for _, p in written} == {None, 1, 2}  # tokens and stops are about no project
    config = alembic_config(database_url)
    command.downgrade(config, "0010")
    with db.engine_of(app).begin() as conn:  # one more, hashed as before 0011
        prev, last = conn.execute(text("SELECT hash, id FROM audit_log ORDER BY id DESC")).first()
        entry = {"at": "2026-12-01T10:00:00.000000", "actor": "ops", "role": "admin",
                 "action": "project.checked", "subject_type": "project", "subject_id": "1",
                 "before": None, "after": None, "request_id": None, "source_ip": None}
        conn.execute(text(f"INSERT INTO audit_log ({', '.join(entry)}, prev_hash, hash) VALUES "
                          f"({', '.join(':' + k for k in entry)}, :prev, :hash)"),
                     entry | {"prev": prev, "hash": entry_hash(prev, entry)})
    db.engine_of(app).dispose()
    written.append((last + 1, 1))
    command.upgrade(config, "head")
    with db.session_for(app) as session:
        assert session.execute(read).all() == written
        assert_append_only(session)
        verdict = audit.verify(session)
    assert verdict.problem is None and verdict.count == len(written)
    scoped["ci-bot"].insert(0, ("project.checked", "project"))
    assert {who: seen(api, who) for who in scoped} == scoped


REFUSE = {  # a refusal of UPDATE that 0011 does not know of, so that its backfill fails
    "sqlite": ["CREATE TRIGGER refuse BEFORE UPDATE ON audit_log "
               "BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": ["CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER refuse BEFORE UPDATE ON audit_log FOR EACH ROW "
                   "EXECUTE FUNCTION refuse()"],
}


def test_0011_failing_midway_changes_nothing_and_the_log_stays_append_only(
        database_url, app, api):
    register(api, 1)
    db.engine_of(app).dispose()
    config = alembic_config(database_url)
    command.downgrade(config, "0010")
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for statement in REFUSE[engine.dialect.name]:
            conn.execute(text(statement))
    with pytest.raises(Exception, match="refused"):
        command.upgrade(config, "head")
    assert "project_id" not in {c["name"] for c in inspect(engine).get_columns("audit_log")}
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse" if engine.dialect.name == "sqlite"
                          else "DROP TRIGGER refuse ON audit_log"))
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0010"
    engine.dispose()
    with db.session_for(app) as session:
        assert_append_only(session)
