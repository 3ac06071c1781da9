"""The audit log against someone who can rewrite the database: every tamper case the hash
chain alone misses is caught by the checkpoints outside it; on PostgreSQL the service's own
role cannot even try."""

from __future__ import annotations

import gc
import json
import secrets
import subprocess
import time

import pytest
from sqlalchemy import create_engine, text

from docker_cd_local.service import PromotionService
from promotion_service import create_app, db
from promotion_service.cli import main
from promotion_service.db.schema import service_can_bypass_audit
from promotion_service.domain.audit_chain import HASHED_FIELDS, entry_hash
from promotion_service.store import audit as audit_store
from tests.promotion_service.helpers import register
from tests.promotion_service.test_cli import drop_append_only_triggers


@pytest.fixture
def anchored(monkeypatch, database_url, policy_file, tmp_path):
    """The CLI's environment, with a checkpoint file and a key outside the database."""
    monkeypatch.setenv("PROMOTION_DATABASE_URL", database_url)
    monkeypatch.setenv("PROMOTION_POLICY_FILE", policy_file)
    key = tmp_path / "audit.key"
    key.write_text(secrets.token_urlsafe(32))
    monkeypatch.setenv("PROMOTION_AUDIT_KEY_FILE", str(key))
    monkeypatch.setenv("PROMOTION_AUDIT_CHECKPOINT_FILE", str(tmp_path / "checkpoints.jsonl"))
    return tmp_path / "checkpoints.jsonl"


def entries_and_a_checkpoint(api, capsys):
    for n in range(1, 4):
        register(api, n)
    assert main(["audit", "checkpoint"]) == 0
    assert main(["audit", "verify"]) == 0
    assert "consistent with 1 checkpoints" in capsys.readouterr().err


def tamper(app, *statements):
    with db.session_for(app) as session:
        drop_append_only_triggers(session)  # whoever does this owns the tables
        for statement in statements:
            session.execute(text(statement))


def verify_fails(capsys, *expected):
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    for part in expected:
        assert part in err, err
    return err


def test_removing_the_newest_entries_is_detected(anchored, api, app, capsys):
    entries_and_a_checkpoint(api, capsys)
    tamper(app, "DELETE FROM audit_log WHERE id > (SELECT max(id) - 2 FROM audit_log)")
    verify_fails(capsys, "the newest 2 were removed")


def test_removing_every_entry_is_detected(anchored, api, app, capsys):
    entries_and_a_checkpoint(api, capsys)
    tamper(app, "DELETE FROM audit_log")
    verify_fails(capsys, "the log has 0 entries but the checkpoint", "were removed")


def test_an_entry_edited_and_the_chain_rehashed_is_detected(anchored, api, app, capsys):
    entries_and_a_checkpoint(api, capsys)
    tamper(app, "UPDATE audit_log SET actor = 'mallory' WHERE id = 3")
    with db.session_for(app) as session:  # recompute every hash from entry 3 on
        prev = None
        for entry_id, _, digest, *fields in list(audit_store.stored_in_order(session)):
            if prev is not None and entry_id >= 3:
                entry = dict(zip(HASHED_FIELDS, fields, strict=True))
                for column in ("before", "after"):
                    if entry[column] is not None:
                        entry[column] = json.loads(entry[column])
                digest = entry_hash(prev, entry)
                session.execute(text("UPDATE audit_log SET prev_hash = :p, hash = :h "
                                     "WHERE id = :id"), {"p": prev, "h": digest, "id": entry_id})
            prev = digest
    assert main(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "the chain was rewritten from here or before" in err


def test_the_chain_alone_misses_what_the_checkpoints_catch(anchored, api, app, capsys,
                                                           monkeypatch):
    entries_and_a_checkpoint(api, capsys)
    tamper(app, "DELETE FROM audit_log WHERE id > (SELECT max(id) - 2 FROM audit_log)")
    monkeypatch.delenv("PROMOTION_AUDIT_CHECKPOINT_FILE")
    monkeypatch.delenv("PROMOTION_AUDIT_KEY_FILE")
    assert main(["audit", "verify"]) == 0  # what docs/promotion-service.md says it cannot see
    assert "removing the newest entries or rewriting the chain cannot be detected" in (
        capsys.readouterr().err)


def test_an_edited_or_forged_checkpoint_is_detected(anchored, api, capsys, tmp_path):
    entries_and_a_checkpoint(api, capsys)
    line = json.loads(anchored.read_text())
    anchored.write_text(json.dumps(line | {"count": line["count"] - 2}) + "\n")
    verify_fails(capsys, "checkpoint line 1 is not signed with the audit key")
    other_key = tmp_path / "other.key"
    other_key.write_text(secrets.token_urlsafe(32))
    anchored.unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROMOTION_AUDIT_KEY_FILE", str(other_key))
        assert main(["audit", "checkpoint"]) == 0  # signed with a key that is not the service's
    verify_fails(capsys, "checkpoint line 1 is not signed with the audit key")


def test_a_missing_checkpoint_file_fails_verification(anchored, api, capsys):
    register(api, 1)
    verify_fails(capsys, "checkpoints.jsonl is missing")


def test_checkpoints_only_ever_append_so_the_file_can_be_append_only(anchored, api, capsys):
    anchored.touch()
    made = subprocess.run(["chattr", "+a", str(anchored)], capture_output=True, text=True)
    assert made.returncode == 0, f"chattr +a failed (needs root and ext4/xfs): {made.stderr}"
    try:
        register(api, 1)
        assert main(["audit", "checkpoint"]) == 0
        register(api, 2)
        assert main(["audit", "checkpoint"]) == 0
        with pytest.raises(PermissionError):
            anchored.write_text("")  # what an attacker on the host would try
        assert main(["audit", "verify"]) == 0
        assert "consistent with 2 checkpoints" in capsys.readouterr().err
    finally:
        subprocess.run(["chattr", "-a", str(anchored)], check=True)


def test_half_a_configuration_names_the_missing_variable(anchored, monkeypatch, capsys):
    monkeypatch.delenv("PROMOTION_AUDIT_KEY_FILE")
    assert main(["audit", "verify"]) == 2
    assert "PROMOTION_AUDIT_KEY_FILE is not set" in capsys.readouterr().err


def test_the_service_writes_checkpoints_as_the_log_grows(tmp_path):
    key = tmp_path / "audit.key"
    key.write_text(secrets.token_urlsafe(32))
    checkpoints = tmp_path / "checkpoints.jsonl"
    service = PromotionService.start(tmp_path / "service", settings={
        "PROMOTION_AUDIT_KEY_FILE": str(key), "PROMOTION_AUDIT_CHECKPOINT_FILE": str(checkpoints),
        "PROMOTION_AUDIT_CHECKPOINT_SECONDS": "0.2"})
    try:
        service.api("POST", "projects", json={"path": "group/app"})
        entries = len(service.api("GET", "audit", params={"page_size": 100}))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            counts = [json.loads(line)["count"] for line in checkpoints.read_text().splitlines()]
            if counts and counts[-1] == entries:
                break
            time.sleep(0.2)
        assert counts[-1] == entries, counts
        assert counts == sorted(set(counts))  # a line only when the log grew
    finally:
        service.stop()


# --- PostgreSQL: TRUNCATE, and a service role that owns nothing ------------------------------

@pytest.mark.postgres
def test_truncate_is_refused_even_for_the_owner(postgres_url):
    engine = create_engine(postgres_url)
    with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_log"))
    engine.dispose()


@pytest.fixture
def roles(postgres_url):
    """An owner role that migrates, and the service's role; a fresh database owned by the first."""
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"roles{secrets.token_hex(4)}"
    with admin.connect() as conn:
        for role in ("owner", "app"):
            conn.execute(text(f"CREATE ROLE {name}_{role} LOGIN"))
        conn.execute(text(f"CREATE DATABASE {name} OWNER {name}_owner"))
    base = postgres_url.rsplit("/", 1)[0].replace("postgres@", "{}@")
    yield (base.format(f"{name}_owner") + f"/{name}", base.format(f"{name}_app") + f"/{name}")
    gc.collect()  # as postgres_url does: leaked connections reset while their database exists
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        for role in ("owner", "app"):
            conn.execute(text(f"DROP ROLE IF EXISTS {name}_{role}"))
    admin.dispose()


@pytest.mark.postgres
def test_the_service_role_may_only_append_to_the_audit_log(roles, monkeypatch, capsys,
                                                           policy_file):
    owner_url, app_url = roles
    monkeypatch.setenv("PROMOTION_DATABASE_URL", app_url)
    monkeypatch.setenv("PROMOTION_DATABASE_OWNER_URL", owner_url)
    monkeypatch.setenv("PROMOTION_POLICY_FILE", policy_file)
    assert main(["db", "upgrade"]) == 0
    # the app role writes
    assert main(["token", "create", "--role", "ci", "--name", "ci", "--all-projects"]) == 0
    token = capsys.readouterr().out.strip()
    app = create_app({"DATABASE_URL": app_url, "POLICY_FILE": policy_file})
    resp = app.test_client().post("/api/v1/images", headers={"Authorization": f"Bearer {token}"},
                                  json={"project": "group/app",
                                        "repository": "registry.example.com/group/app",
                                        "digest": "sha256:" + "1" * 64})
    assert resp.status_code == 201, resp.json
    assert service_can_bypass_audit(db.engine_of(app)) is False
    engine = create_engine(app_url)
    for attack in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log",
                   "TRUNCATE audit_log", "DROP TRIGGER audit_log_append_only ON audit_log",
                   "ALTER TABLE audit_log DISABLE TRIGGER ALL", "DROP TABLE audit_log",
                   "UPDATE alembic_version SET version_num = '0001'"):
        with pytest.raises(Exception, match=r"permission denied|must be owner"), \
                engine.begin() as conn:
            conn.execute(text(attack))
    engine.dispose()
    owner = create_engine(owner_url)
    assert service_can_bypass_audit(owner) is True
    owner.dispose()
    db.engine_of(app).dispose()
    assert main(["audit", "verify"]) == 0
