"""The whole life of images through test -> staging -> production, on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from promotion_service import db
from promotion_service.db.models import ApprovalRecord, Outbox, Verification
from promotion_service.domain.actor import Actor
from promotion_service.services import audit
from promotion_service.services.promotion import mark_triggered, reevaluate_waiting
from tests.promotion_service.helpers import (
    PROJECT,
    SOAKED,
    age,
    codes,
    deploy,
    gate,
    ref,
    register,
    soak,
    verify,
)


def walk_to_staging(api, app, n):
    """Image n: registered, deployed and verified in test, soaked, promoted, live in staging."""
    register(api, n, triggered_by="carol")
    deploy(api, n, "test")
    verify(api, n, "test")
    [promotion_id] = soak(app)
    deploy(api, n, "staging")
    verify(api, n, "staging")
    return promotion_id


def approve(api, n, who, environment="production", **extra):
    return api.post("/approvals", json=ref(n, environment) | extra, as_=who)


def outbox_rows(app):
    with db.session_for(app, write=False) as session:
        return [(o.promotion_id, o.payload) for o in session.scalars(select(Outbox))]


def test_auto_promotion_waits_for_soak_time_then_writes_the_trigger(api, app):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")

    refused = gate(api, 1, "staging")
    assert refused.json["allowed"] is False
    assert codes(refused) == ["soak_time"]
    assert "left" in refused.json["reasons"][0]["message"]
    assert promotions_of(api) == []

    [promotion_id] = soak(app)
    assert gate(api, 1, "staging").json == {"allowed": True, "reasons": [], "release_id": 1,
                                            "image": f"{ref(1)['repository']}@{ref(1)['digest']}",
                                            "environment": "staging", "hold": None}
    [(outbox_promotion, payload)] = outbox_rows(app)
    assert outbox_promotion == promotion_id
    image = f"{ref(1)['repository']}@{ref(1)['digest']}"
    # registered through POST /images: its commit, and no template hash
    assert payload["variables"] == {"CD_IMAGE": image, "CD_IMAGE_APP": image,
                                    "CD_RELEASE_ID": "1", "CD_RELEASE_COMMIT": "ab" * 20,
                                    "CD_TARGET_ENVIRONMENT": "staging",
                                    "CD_PROMOTION_ID": str(promotion_id)}
    with db.session_for(app) as session:  # the worker again: nothing new
        assert reevaluate_waiting(session) == []


def promotions_of(api, **filters):
    return api.get("/promotions", query_string=filters).json


def test_promotion_states_follow_deploy_and_verify_reports(api, app):
    promotion_id = walk_to_staging(api, app, 1)
    promotion = api.get(f"/promotions/{promotion_id}").json
    assert (promotion["state"], promotion["kind"], promotion["environment"]) == (
        "verified", "auto", "staging")
    [release] = api.get("/projects/1/environments/staging/releases").json
    assert release["image"].endswith(ref(1)["digest"]) and release["verified_at"]
    actions = [e["action"] for e in api.get("/audit", query_string={
        "subject_type": "promotion"}).json]
    assert actions == ["promotion.verified", "promotion.deployed", "promotion.deploying",
                       "promotion.requested"]


def claim(api, n, environment, pipeline_id, **extra):
    return api.post("/claims", json=ref(n, environment) | {"pipeline_id": pipeline_id} | extra)


def test_the_first_pipeline_claims_a_promotion_and_a_second_is_refused(api, app):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    [promotion_id] = soak(app)

    first = claim(api, 1, "staging", 100, promotion_id=promotion_id)
    again = claim(api, 1, "staging", 100, promotion_id=promotion_id)
    second = claim(api, 1, "staging", 101, promotion_id=promotion_id)

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json["promotion"]["id"] == promotion_id and first.json["allowed"]
    assert second.status_code == 409 and codes(second) == ["promotion_claimed"]
    assert "pipeline 100" in second.json["reasons"][0]["message"]
    assert api.get(f"/promotions/{promotion_id}").json["pipeline_id"] == 100
    # the gate, asked with the other pipeline, says the same without changing anything
    assert codes(gate(api, 1, "staging", promotion_id=promotion_id, pipeline_id=101)) == [
        "promotion_claimed"]
    claims = api.get("/audit", query_string={"action": "promotion.claimed"}).json
    assert [(c["actor"], c["after"]["pipeline_id"]) for c in claims] == [
        ("ci-bot", 100), ("ci-bot", 100)]


def test_production_needs_two_approvals_and_the_last_one_promotes(api, app):
    walk_to_staging(api, app, 1)
    refused = gate(api, 1, "production")
    assert codes(refused) == ["approvals_missing"]
    assert "2 more approval(s) from role approver or release-manager" in (
        refused.json["reasons"][0]["satisfy"])

    assert approve(api, 1, "alice").status_code == 201
    assert approve(api, 1, "alice").status_code == 200  # idempotent
    assert "1 of 2" in gate(api, 1, "production").json["reasons"][0]["message"]
    assert promotions_of(api, environment="production") == []

    assert approve(api, 1, "bob", comment="QA passed").status_code == 201
    [promotion] = promotions_of(api, environment="production")
    assert (promotion["kind"], promotion["state"]) == ("approval", "requested")
    assert gate(api, 1, "production").json["allowed"] is True
    deploy(api, 1, "production")
    verify(api, 1, "production")
    assert api.get(f"/promotions/{promotion['id']}").json["state"] == "verified"


def test_four_eyes_refuses_whoever_triggered_the_image(api, app):
    walk_to_staging(api, app, 1)  # triggered by carol
    resp = approve(api, 1, "carol")
    assert resp.status_code == 403
    assert "four-eyes" in resp.json["message"]
    assert "other than carol" in gate(api, 1, "production").json["reasons"][0]["satisfy"]


def test_ci_tokens_never_approve(api, app):
    walk_to_staging(api, app, 1)
    resp = approve(api, 1, "ci-bot")
    assert resp.status_code == 403 and "approver" in resp.json["message"]


def test_an_expired_approval_no_longer_counts(api, app):
    walk_to_staging(api, app, 1)
    approve(api, 1, "alice", expires_in=3600)
    with db.session_for(app) as session:
        for row in session.scalars(select(ApprovalRecord)):
            row.expires_at -= timedelta(hours=2)
    approve(api, 1, "bob")
    refused = gate(api, 1, "production")
    assert codes(refused) == ["approvals_missing"]
    assert refused.json["reasons"][0]["details"]["approved_by"] == ["bob"]
    assert promotions_of(api, environment="production") == []


def test_a_rejection_blocks_until_withdrawn(api, app):
    walk_to_staging(api, app, 1)
    rejection = approve(api, 1, "rm", decision="reject", comment="CVE under review")
    approve(api, 1, "alice")
    approve(api, 1, "bob")
    refused = gate(api, 1, "production")
    assert codes(refused) == ["rejected"]
    assert "CVE under review" in refused.json["reasons"][0]["message"]
    assert promotions_of(api, environment="production") == []

    assert api.delete(f"/approvals/{rejection.json['id']}", as_="alice").status_code == 403
    assert api.delete(f"/approvals/{rejection.json['id']}", as_="rm").status_code == 200
    assert gate(api, 1, "production").json["allowed"] is True
    [promotion] = promotions_of(api, environment="production")
    assert promotion["kind"] == "approval"


def test_a_scan_over_the_limit_fails_the_gate_naming_the_findings(api, app):
    register(api, 1, scan={"critical": 0, "high": 2})
    api.post("/scans", json=ref(1) | {"counts": {"critical": 1, "high": 2}, "findings": [
        {"id": "CVE-2026-0001", "severity": "critical"}, {"id": "CVE-2026-0002",
                                                          "severity": "high"}]})
    deploy(api, 1, "test")
    verify(api, 1, "test")
    age(app, Verification, SOAKED)
    refused = gate(api, 1, "staging")
    assert codes(refused) == ["scan_failed"]
    reason = refused.json["reasons"][0]
    assert "1 critical" in reason["message"] and "CVE-2026-0001" in reason["message"]
    assert "CVE-2026-0002" not in reason["message"]  # high is allowed in staging
    resp = api.post("/promotions", json=ref(1, "staging"), as_="rm")
    assert resp.status_code == 409 and [r["code"] for r in resp.json["reasons"]] == ["scan_failed"]


def test_a_freeze_window_refuses_until_it_ends(api, app):
    walk_to_staging(api, app, 1)
    approve(api, 1, "alice")
    policy = api.get("/projects/1").json["environments"][2]["policy"]
    policy.update(freeze_windows=[{"start": "2000-01-01T00:00:00Z", "end": "2999-01-01T00:00:00Z",
                                   "reason": "year-end freeze"}], reason="year-end")
    assert api.put("/projects/1/environments/production/policy", json=policy,
                   as_="admin").status_code == 200
    approve(api, 1, "bob")
    refused = gate(api, 1, "production")
    assert codes(refused) == ["freeze_window"]
    assert refused.json["reasons"][0]["details"]["until"] == "2999-01-01T00:00:00Z"
    assert "year-end freeze" in refused.json["reasons"][0]["message"]
    assert promotions_of(api, environment="production") == []


def test_an_emergency_stop_freezes_every_project_until_lifted(api, app):
    walk_to_staging(api, app, 1)
    approve(api, 1, "alice")
    assert api.post("/stops", json={"environments": ["production"], "reason": "incident 42"},
                    as_="ci-bot").status_code == 403
    [stop] = api.post("/stops", json={"environments": ["production"], "reason": "incident 42"},
                      as_="rm").json
    approve(api, 1, "bob")
    refused = gate(api, 1, "production")
    assert codes(refused) == ["emergency_stop"] and "incident 42" in (
        refused.json["reasons"][0]["message"])
    assert promotions_of(api, environment="production") == []
    other_image = {"repository": "registry.example.com/other/app", "digest": ref(9)["digest"]}
    other = api.post("/images", json=other_image | {"project": "other/app"}, as_="ci-other")
    assert other.status_code == 201
    assert "emergency_stop" in codes(api.get("/gate", query_string=other_image | {
        "environment": "production"}, as_="ci-other"))

    assert api.delete(f"/stops/{stop['id']}", as_="rm").status_code == 200
    assert gate(api, 1, "production").json["allowed"] is True


def test_a_revoked_image_goes_nowhere_and_the_api_says_where_it_runs(api, app):
    walk_to_staging(api, app, 1)
    image_id = api.get("/images", query_string={"digest": ref(1)["digest"]}).json[0]["id"]
    assert api.post(f"/images/{image_id}/revoke", json={"reason": "CVE-2026-9999"},
                    as_="ci-bot").status_code == 403
    resp = api.post(f"/images/{image_id}/revoke", json={"reason": "CVE-2026-9999"}, as_="rm")
    assert resp.status_code == 200
    assert resp.json["running_in"] == ["test", "staging"]
    assert resp.json["image"]["revoked"] is True
    for env in ("test", "staging", "production"):
        assert "revoked" in codes(gate(api, 1, env))
    refused = api.post("/promotions", json=ref(1, "production"), as_="rm")
    assert refused.status_code == 409 and "revoked" in [r["code"] for r in refused.json["reasons"]]


def test_rollback_goes_to_the_previous_verified_release_and_holds_the_environment(api, app):
    walk_to_staging(api, app, 1)
    walk_to_staging(api, app, 2)
    assert api.post("/projects/1/environments/staging/rollback", json={},
                    as_="ci-bot").status_code == 403
    resp = api.post("/projects/1/environments/staging/rollback", json={"reason": "bad release"},
                    as_="rm")
    assert resp.status_code == 201, resp.json
    assert (resp.json["kind"], resp.json["image"]) == ("rollback", f"{ref(1)['repository']}@"
                                                       f"{ref(1)['digest']}")
    assert gate(api, 1, "staging", promotion_id=resp.json["id"], pipeline_id=7).json["allowed"]
    deploy(api, 1, "staging")
    verify(api, 1, "staging")
    staging = api.get("/projects/1").json["environments"][1]
    assert staging["hold"]["by"] == "rm"

    # a newer image verified in test would auto-promote, but the hold stops it
    register(api, 3)
    deploy(api, 3, "test")
    verify(api, 3, "test")
    assert soak(app) == []
    assert api.delete("/projects/1/environments/staging/hold", as_="rm").status_code == 200
    with db.session_for(app) as session:
        assert len(reevaluate_waiting(session)) == 1


def test_a_manual_promotion_of_an_older_image_puts_a_hold(api, app):
    walk_to_staging(api, app, 1)
    walk_to_staging(api, app, 2)
    api.post("/promotions", json=ref(1, "staging"), as_="rm")  # 1 is still verified in test
    assert api.get("/projects/1").json["environments"][1]["hold"]["reason"].startswith(
        "manual promotion of older release")


def test_illegal_state_moves_are_refused_by_the_database(api, app):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    [promotion_id] = soak(app)
    resp = api.patch(f"/promotions/{promotion_id}", json={"state": "verified"})
    assert resp.status_code == 409
    assert "requested; it cannot become verified" in resp.json["message"]
    with db.session_for(app) as session:
        mark_triggered(session, promotion_id, 55, "http://gitlab/p/55",
                                  Actor.system("dispatcher"))
    assert api.patch(f"/promotions/{promotion_id}", json={"state": "failed",
                                                           "message": "boom"}).status_code == 200
    assert api.patch(f"/promotions/{promotion_id}", json={"state": "deploying"}).status_code == 409
    shown = api.get(f"/promotions/{promotion_id}").json
    assert (shown["state"], shown["failure_message"], shown["pipeline_id"]) == (
        "failed", "boom", 55)


def test_the_audit_chain_is_intact_after_a_life(api, app):
    walk_to_staging(api, app, 1)
    with db.session_for(app, write=False) as session:
        verdict = audit.verify(session)
        total = session.scalar(select(func.count()).select_from(Outbox))
    assert verdict.problem is None and verdict.count > 10 and total == 1
    entry = api.get("/audit", query_string={"action": "image.registered"}).json[0]
    assert (entry["actor"], entry["role"], entry["subject_type"]) == ("ci-bot", "ci", "image")
    assert entry["request_id"] and entry["source_ip"] == "127.0.0.1"
    assert entry["after"]["project"] == PROJECT


def test_requesting_a_promotion_that_is_done_returns_it(api, app):
    promotion_id = walk_to_staging(api, app, 1)
    resp = api.post("/promotions", json=ref(1, "staging"), as_="rm")
    assert (resp.status_code, resp.json["id"]) == (200, promotion_id)


def test_a_deployment_rolled_back_by_the_deploy_step_restores_the_previous_release(api, app):
    walk_to_staging(api, app, 1)
    register(api, 2)
    deploy(api, 2, "test")
    verify(api, 2, "test")
    [promotion_id] = soak(app)
    started = deploy(api, 2, "staging", state="started")
    done = api.patch(f"/deployments/{started['id']}", json={"state": "succeeded"})
    assert done.status_code == 200
    resp = api.patch(f"/deployments/{started['id']}", json={"state": "rolled_back",
                                                            "message": "unhealthy"})
    assert resp.status_code == 200
    assert api.patch(f"/deployments/{started['id']}", json={"state": "started"}).status_code == 409
    promotion = api.get(f"/promotions/{promotion_id}").json
    assert (promotion["state"], promotion["failure_message"]) == ("failed", "unhealthy")
    live, _ = api.get("/projects/1/environments/staging/releases").json
    assert live["rolled_back_at"] and live["image"].endswith(ref(2)["digest"])
    image_1 = api.get("/images", query_string={"digest": ref(1)["digest"]}).json[0]["id"]
    staging = next(e for e in api.get(f"/images/{image_1}").json["environments"]
                   if e["environment"] == "staging")
    assert staging["live"] is True
    assert api.get(f"/images/{image_1}").json["scan"]["counts"] == {"critical": 0, "high": 0}


def test_a_failed_verification_fails_the_promotion(api, app):
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    [promotion_id] = soak(app)
    deploy(api, 1, "staging")
    verify(api, 1, "staging", passed=False)
    promotion = api.get(f"/promotions/{promotion_id}").json
    assert (promotion["state"], promotion["failure_message"]) == (
        "failed", "verification failed in staging")
    assert "not_verified" in [r["code"] for r in gate(api, 1, "production").json["reasons"]]


def test_a_newer_image_deployed_first_supersedes_an_older_promotion(api, app):
    for n in (1, 2):
        register(api, n)
        deploy(api, n, "test")
        verify(api, n, "test")
    age(app, Verification, SOAKED)
    older = api.post("/promotions", json=ref(1, "staging"), as_="rm").json
    api.post("/promotions", json=ref(2, "staging"), as_="rm")
    deploy(api, 2, "staging")
    assert api.get(f"/promotions/{older['id']}").json["state"] == "superseded"


def test_a_deploy_refused_before_it_started_fails_its_promotion_and_nothing_else(api, app):
    """What `docker-cd deploy` sends when it refuses before it starts: a first report `failed`
    (no `started`, no record). Taken for the promotion in flight, which fails with the reason;
    refused (409) into an environment where none of the release is in flight."""
    register(api, 1)
    deploy(api, 1, "test")
    verify(api, 1, "test")
    [promotion_id] = soak(app)
    with db.session_for(app) as session:
        mark_triggered(session, promotion_id, 100, None, Actor.system("test"))
    assert claim(api, 1, "staging", 100, promotion_id=promotion_id).status_code == 201
    reason = "release 1 holds the template sha256:1..., but deploy here is sha256:2..."
    refused = {"state": "failed", "message": reason}

    elsewhere = api.post("/deployments", json=ref(1, "production") | refused)
    assert elsewhere.status_code == 409 and "in flight" in elsewhere.json["message"]
    assert api.post("/deployments", json=ref(1, "staging") | refused).status_code == 201

    promotion = api.get(f"/promotions/{promotion_id}").json
    assert (promotion["state"], promotion["failure_message"]) == ("failed", reason)
    assert api.get("/projects/1/environments/staging/releases").json == []  # nothing went live
