"""External status checks: signed MR payloads in, passed/failed/pending answers out to GitLab."""

import json

import pytest
from sqlalchemy import select

from docker_cd_local.gitlab_double import GitLabDouble
from promotion_service.db import session_for
from promotion_service.db.gitlab_models import MergeRequestCheck
from promotion_service.db.models import Outbox
from promotion_service.gitlab import merge_request_gate
from promotion_service.gitlab.client import GitLabClient
from promotion_service.outbox.dispatcher import Dispatcher
from promotion_service.outbox.settings import DispatcherSettings
from tests.promotion_service.gitlab_fixtures import make_project, make_release
from tests.promotion_service.gitlab_payloads import (
    SHA,
    hook_headers,
    merge_request_check,
    signed,
)

CHECK_SECRET = "status-check-shared-secret"
BAD_SHA = "b" * 40
CLEAN = {"critical": 0, "high": 0, "medium": 2, "low": 5}
FAILED_SCAN = {"critical": 2, "high": 1, "medium": 0, "low": 0}


@pytest.fixture
def app(app):
    app.config.update(WEBHOOK_SECRET="hook-secret", GITLAB_STATUS_CHECK_SECRET=CHECK_SECRET)
    with session_for(app) as session:
        project = make_project(session, policies={"test": {"max_severity": "high"},
                                                  "staging": {}})
        make_release(session, project, sha=SHA, scan=CLEAN)
        make_release(session, project, sha=BAD_SHA, scan=FAILED_SCAN)
    return app


def check(client, mr_iid=12, sha=SHA, secret=CHECK_SECRET, check_id=5):
    body, headers = signed(merge_request_check(mr_iid, sha=sha, check_id=check_id), secret)
    return client.post("/hooks/gitlab/status-check", data=body, headers=headers)


def outbox(app):
    with session_for(app, write=False) as session:
        return [(r.kind, r.payload) for r in session.scalars(select(Outbox).order_by(Outbox.id))]


def test_good_image_passes_and_the_answer_is_queued_for_gitlab(app, client):
    answer = check(client)
    assert answer.status_code == 200
    assert (answer.json["status"], answer.json["reasons"]) == ("passed", [])
    assert outbox(app) == [("status_check_response", {
        "gitlab_project_id": 42, "project_path": "group/app", "mr_iid": 12, "sha": SHA,
        "check_id": 5, "status": "passed"})]


def test_image_whose_scan_failed_fails_with_reasons_readable_in_the_api(app, client):
    answer = check(client, mr_iid=13, sha=BAD_SHA)
    assert answer.json["status"] == "failed"
    [reason] = answer.json["reasons"]
    assert reason["code"] == "scan_failed"
    assert "2 critical" in reason["message"] and "CVE-2026-0001" in reason["message"]
    assert outbox(app)[0][1]["status"] == "failed"
    from promotion_service.domain.actor import Actor
    from promotion_service.services.tokens import create

    with session_for(app) as session:
        _, token = create(session, Actor.system("test"), name="reader", role="ci",
                          project="group/app")
    listed = client.get("/api/v1/merge-request-checks?project=group/app&mr_iid=13",
                        headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [(c["mr_iid"], c["status"], c["reasons"][0]["code"]) for c in listed.json] == [
        (13, "failed", "scan_failed")]
    assert client.get("/api/v1/merge-request-checks").status_code == 401


@pytest.mark.parametrize("secret", ["wrong-secret", ""])
def test_bad_signature_is_401_and_nothing_is_recorded(app, client, secret):
    body, headers = signed(merge_request_check(), secret or "x")
    if not secret:
        del headers["X-Gitlab-Signature"]
    answer = client.post("/hooks/gitlab/status-check", data=body, headers=headers)
    assert answer.status_code == 401
    assert "X-Gitlab-Signature" in answer.json["message"]
    assert outbox(app) == []
    with session_for(app, write=False) as session:
        assert session.scalars(select(MergeRequestCheck)).all() == []


def test_signature_covers_the_raw_body(app, client):
    body, headers = signed(merge_request_check(), CHECK_SECRET)
    tampered = body.replace(b'"iid": 12', b'"iid": 99')
    assert client.post("/hooks/gitlab/status-check", data=tampered,
                       headers=headers).status_code == 401


def test_image_not_ready_is_pending_then_answered_when_its_state_changes(app, client):
    later = "c" * 40
    assert check(client, mr_iid=14, sha=later).json["status"] == "pending"
    assert [p["status"] for _, p in outbox(app)] == ["pending"]
    with session_for(app) as session:
        assert merge_request_gate.recheck_pending(session, app.config) == 0  # nothing changed yet
        from promotion_service.db.models import Project

        project = session.scalars(select(Project)).one()
        make_release(session, project, sha=later, n=3, scan=CLEAN)
    with session_for(app) as session:
        assert merge_request_gate.recheck_pending(session, app.config) == 1
    assert [p["status"] for _, p in outbox(app)] == ["pending", "passed"]


def test_missing_check_id_is_a_clear_error(client):
    payload = merge_request_check()
    del payload["external_approval_rule"]
    body, headers = signed(payload, CHECK_SECRET)
    answer = client.post("/hooks/gitlab/status-check", data=body, headers=headers)
    assert answer.status_code == 422
    assert "external_approval_rule.id" in answer.json["message"]


def test_answers_reach_gitlab_through_the_dispatcher(app, client):
    check(client, mr_iid=12, sha=SHA)
    check(client, mr_iid=13, sha=BAD_SHA)
    with GitLabDouble(access_token="glpat") as gitlab:
        gitlab.add_project(42, "group/app")
        gitlab.add_status_check(42, 5)
        gitlab.add_merge_request(42, 12, sha=SHA)
        gitlab.add_merge_request(42, 13, sha=BAD_SHA)
        dispatch(app, gitlab)
        answers = gitlab.calls_to("POST", "/projects/42/merge_requests/*/status_check_responses")
    assert sorted((c.path.split("/")[4], c.body["status"], c.status) for c in answers) == [
        ("12", "passed", 201), ("13", "failed", 201)]


def dispatch(app, gitlab):
    Dispatcher(lambda: session_for(app), GitLabClient(gitlab.url, "glpat"),
               DispatcherSettings()).run_once()


def sent(app):
    with session_for(app, write=False) as session:
        return [(r.kind, r.state, r.last_error)
                for r in session.scalars(select(Outbox).order_by(Outbox.id))]


def test_an_answer_for_a_head_that_moved_on_is_settled_not_failed(app, client):
    check(client, mr_iid=12, sha=SHA)
    with GitLabDouble(access_token="glpat") as gitlab:
        gitlab.add_project(42, "group/app")
        gitlab.add_status_check(42, 5)
        gitlab.add_merge_request(42, 12, sha="d" * 40)  # pushed to before the answer went
        dispatch(app, gitlab)
        [call] = gitlab.calls_to("POST", "/projects/42/merge_requests/12/*")
    assert call.status == 409
    [(kind, state, outcome)] = sent(app)
    assert (kind, state) == ("status_check_response", "sent")
    assert "does not match HEAD" in outcome


def commit_status_event(client, mr_iid, sha):
    payload = merge_request_check(mr_iid, sha=sha)
    del payload["external_approval_rule"]
    return client.post("/hooks/gitlab", data=json.dumps(payload),
                       headers=hook_headers(payload, "hook-secret"))


def test_a_second_pending_commit_status_gitlab_refuses_is_settled(app, client):
    """Two merge requests from one branch: two pending answers for the same commit."""
    app.config["GITLAB_GATE_COMMIT_STATUS"] = "1"
    later = "c" * 40  # no image yet: pending
    commit_status_event(client, 15, later)
    commit_status_event(client, 16, later)
    with GitLabDouble(access_token="glpat") as gitlab:
        gitlab.add_project(42, "group/app")
        gitlab.add_commit(42, later, ref="feature")
        dispatch(app, gitlab)
        assert [c.status for c in gitlab.calls_to("POST", f"/projects/42/statuses/{later}")] \
            == [201, 400]
        assert [s["status"] for s in gitlab.statuses(42, later)] == ["pending"]
    assert [(state, bool(outcome and "already" in outcome)) for _, state, outcome in sent(app)
            ] == [("sent", False), ("sent", True)]


def test_the_commit_status_link_opens_a_page_a_person_can_read(app, client):
    app.config.update(GITLAB_GATE_COMMIT_STATUS="1", PUBLIC_URL="https://cd.example.com")
    with session_for(app) as session:
        from promotion_service.db.models import Image, Scan

        image = session.scalars(select(Image).where(Image.commit_sha == BAD_SHA)).one()
        session.add(Scan(image_id=image.id, scanner="trivy", counts=FAILED_SCAN, actor="ci",
                         findings=[{"id": "<script>alert(1)</script>",
                                    "severity": "critical"}]))
    commit_status_event(client, 15, BAD_SHA)
    [(_, payload)] = outbox(app)
    link = payload["target_url"]
    assert link.startswith(f"https://cd.example.com/gate/commits/42/{BAD_SHA}?key=")
    page = client.get(link.removeprefix("https://cd.example.com"))  # no token: a person
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "docker-cd gate: failed" in text and "group/app" in text and BAD_SHA in text
    assert "registry.example.com/group/app@sha256:" in text
    assert "2 critical" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    for wrong in (link.replace("key=", "key=0"), link.split("?")[0],
                  link.replace(BAD_SHA, SHA)):
        answer = client.get(wrong.removeprefix("https://cd.example.com"))
        assert answer.status_code == 404 and answer.mimetype == "text/html"
        assert "2 critical" not in answer.get_data(as_text=True)


def test_commit_status_form_for_tiers_without_status_checks(app, client):
    app.config["GITLAB_GATE_COMMIT_STATUS"] = "1"
    payload = merge_request_check(15, sha=BAD_SHA)
    del payload["external_approval_rule"]
    answer = client.post("/hooks/gitlab", data=json.dumps(payload),
                         headers=hook_headers(payload, "hook-secret"))
    assert answer.status_code == 200 and "gate failed" in answer.json["outcome"]
    [(kind, sent)] = outbox(app)
    assert kind == "commit_status"
    assert (sent["state"], sent["sha"], sent["ref"]) == ("failed", BAD_SHA, "feature")
    assert "critical" in sent["description"]
