"""`promotion-service` CLI: exit codes and the `Error:` line."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from docker_cd_local.service import PromotionService
from promotion_service import db
from promotion_service.cli import main
from tests.promotion_service.helpers import register


@pytest.fixture
def env(monkeypatch, database_url, policy_file):
    monkeypatch.setenv("PROMOTION_DATABASE_URL", database_url)
    monkeypatch.setenv("PROMOTION_POLICY_FILE", policy_file)


def test_token_create_prints_only_the_token_and_it_works(env, capsys, client):
    assert main(["token", "create", "--role", "ci", "--name", "pipeline",
                 "--project", "group/app"]) == 0
    token = capsys.readouterr().out
    assert token.startswith("pst_") and token.count("\n") == 1
    resp = client.get("/api/v1/images", headers={"Authorization": f"Bearer {token.strip()}"})
    assert resp.status_code == 200


def test_token_list_shows_names_never_values_and_revoke_stops_a_token(env, capsys, client):
    main(["token", "create", "--role", "approver", "--name", "qa", "--project", "group/app"])
    token = capsys.readouterr().out.strip()
    assert main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert "qa\tqa\tapprover\tgroup/app\tactive" in listed and token not in listed
    assert main(["token", "revoke", "qa"]) == 0
    resp = client.get("/api/v1/images", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401


def test_a_duplicate_token_name_is_a_usage_error(env, capsys):
    main(["token", "create", "--role", "approver", "--name", "x"])
    capsys.readouterr()
    assert main(["token", "create", "--role", "approver", "--name", "X"]) == 2
    assert capsys.readouterr().err.startswith("Error: a token named 'x' exists")


@pytest.mark.parametrize("name", ["cli:root", "gitlab:bob", "alice ", " alice", "Gitlab:bob"])
def test_a_token_name_that_could_pass_for_someone_else_is_refused(env, capsys, name):
    assert main(["token", "create", "--role", "approver", "--name", name]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: name: ") and ("reserved" in err or "spaces" in err)


def test_a_ci_token_acts_for_one_project_unless_told_otherwise(env, capsys, client):
    assert main(["token", "create", "--role", "ci", "--name", "runner"]) == 2
    assert "give --project PATH, or --all-projects" in capsys.readouterr().err
    assert main(["token", "create", "--role", "ci", "--name", "runner",
                 "--all-projects"]) == 0
    assert capsys.readouterr().out.startswith("pst_")


def test_a_person_holds_several_tokens(env, capsys):
    for name in ("alice-laptop", "alice-phone"):
        assert main(["token", "create", "--role", "approver", "--name", name,
                     "--person", "Alice"]) == 0
    capsys.readouterr()
    main(["token", "list"])
    listed = capsys.readouterr().out
    assert "alice-laptop\talice\tapprover" in listed
    assert "alice-phone\talice\tapprover" in listed


def test_revoking_an_unknown_token_says_how_to_list_them(env, capsys):
    assert main(["token", "revoke", "ghost"]) == 2
    assert "token list" in capsys.readouterr().err


def test_audit_verify_detects_an_edited_entry(env, capsys, api, app):
    register(api, 1)
    register(api, 2)
    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().err
    with db.session_for(app) as session:
        assert_append_only(session)
    with db.session_for(app) as session:
        drop_append_only_triggers(session)  # an attacker with database access
        session.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 3"))
    assert main(["audit", "verify"]) == 1
    assert capsys.readouterr().err.startswith("Error: audit log entry 3: its content does not "
                                              "match its hash (it was edited)")


def test_audit_verify_detects_a_removed_entry(env, capsys, api, app):
    register(api, 1)
    register(api, 2)
    with db.session_for(app) as session:
        drop_append_only_triggers(session)
        session.execute(text("DELETE FROM audit_log WHERE id = 2"))
    assert main(["audit", "verify"]) == 1
    assert "entry 3: its prev_hash does not match" in capsys.readouterr().err


def assert_append_only(session):
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE audit_log SET actor = 'mallory'"))
    with pytest.raises(Exception, match="append-only"), session.begin_nested():
        session.execute(text("DELETE FROM audit_log"))


def drop_append_only_triggers(session):
    if db.is_postgres(session):
        session.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
    else:
        session.execute(text("DROP TRIGGER audit_log_no_update"))
        session.execute(text("DROP TRIGGER audit_log_no_delete"))


def test_a_bad_database_url_is_an_outside_failure(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PROMOTION_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert main(["token", "list"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("Error: database:") and "PROMOTION_DATABASE_URL" in err


def test_a_bad_policy_file_names_the_field(monkeypatch, capsys, tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("defaults:\n  environments:\n    - name: prod\n      min_soak: soon\n")
    monkeypatch.setenv("PROMOTION_POLICY_FILE", str(path))
    monkeypatch.setenv("PROMOTION_DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    assert main(["token", "list"]) == 2
    assert "min_soak: expected a duration like 90s" in capsys.readouterr().err


def test_a_bad_number_variable_names_it(monkeypatch, capsys):
    monkeypatch.setenv("PROMOTION_MAX_BODY_BYTES", "lots")
    assert main(["token", "list"]) == 2
    assert capsys.readouterr().err.startswith("Error: PROMOTION_MAX_BODY_BYTES: expected int")


def test_db_upgrade_creates_the_schema(monkeypatch, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/fresh.db"
    monkeypatch.setenv("PROMOTION_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 0
    assert main(["token", "create", "--role", "admin", "--name", "root"]) == 0


def test_token_create_and_db_upgrade_do_not_warn_of_the_secret_key(env, capsys, caplog):
    assert main(["token", "create", "--role", "approver", "--name", "qa"]) == 0
    assert main(["db", "upgrade"]) == 0
    assert "PROMOTION_SECRET_KEY" not in capsys.readouterr().err + caplog.text


def test_serve_warns_that_web_sessions_need_a_secret_key_unless_given_one(tmp_path):
    service = PromotionService.start(tmp_path / "svc")
    try:
        assert "PROMOTION_SECRET_KEY is not set" in service.log()
    finally:
        service.stop()
    keyed = PromotionService.start(tmp_path / "keyed",
                                   settings={"PROMOTION_SECRET_KEY": "k" * 64})
    try:
        assert "PROMOTION_SECRET_KEY" not in keyed.log()
    finally:
        keyed.stop()
