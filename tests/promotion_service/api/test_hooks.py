"""POST /hooks/gitlab: secret checked, deliveries deduplicated, events mapped, unknowns ignored."""

import json

import pytest
from sqlalchemy import func, select

from promotion_service.db import session_for
from promotion_service.db.gitlab_models import GitLabDeployment, WebhookDelivery
from promotion_service.db.models import AuditEntry, Deployment, Promotion
from tests.promotion_service.gitlab_fixtures import (
    environment,
    make_project,
    make_promotion,
    make_release,
)
from tests.promotion_service.gitlab_payloads import (
    deployment_event,
    hook_headers,
    job_event,
    pipeline_event,
)

SECRET = "hook-secret-value"


@pytest.fixture
def app(app):
    app.config["WEBHOOK_SECRET"] = SECRET
    return app


@pytest.fixture
def promotion(app):
    """A staging promotion of group/app (GitLab project 42) waiting to be triggered."""
    with session_for(app) as session:
        project = make_project(session)
        image = make_release(session, project)
        return make_promotion(session, project, image).id


def post(client, payload, token=SECRET, **headers):
    body = json.dumps(payload)
    return client.post("/hooks/gitlab", data=body,
                       headers={**hook_headers(payload, token), **headers})


def snapshot(app):
    """Everything a delivery could change."""
    with session_for(app, write=False) as session:
        return (
            [(p.id, p.state, p.pipeline_id, p.failure_message)
             for p in session.scalars(select(Promotion).order_by(Promotion.id))],
            session.scalar(select(func.count(AuditEntry.id))),
            session.scalar(select(func.count(WebhookDelivery.id))),
            session.scalar(select(func.count(Deployment.id))),
        )


def promotion_row(app, promotion_id):
    with session_for(app, write=False) as session:
        return session.get(Promotion, promotion_id)


@pytest.mark.parametrize("token", [None, "", "wrong", SECRET + "x", SECRET.upper()])
def test_wrong_or_missing_token_is_401_and_changes_nothing(app, client, promotion, token):
    before = snapshot(app)
    answer = post(client, pipeline_event(1000, "failed",
                                         variables={"CD_PROMOTION_ID": str(promotion)}), token)
    assert answer.status_code == 401
    assert "X-Gitlab-Token" in answer.json["message"]
    assert snapshot(app) == before


def test_without_a_configured_secret_every_hook_is_refused(app, client, promotion):
    app.config["WEBHOOK_SECRET"] = None
    answer = post(client, pipeline_event(1000, "running"), token="")
    assert answer.status_code == 401
    assert "PROMOTION_WEBHOOK_SECRET" in answer.json["message"]


def test_pipeline_event_claims_the_promotion_for_its_pipeline(app, client, promotion):
    answer = post(client, pipeline_event(1000, "running",
                                         variables={"CD_PROMOTION_ID": str(promotion)}))
    assert answer.status_code == 200 and answer.json["status"] == "processed"
    row = promotion_row(app, promotion)
    assert (row.state, row.pipeline_id) == ("triggered", 1000)


def test_a_second_pipeline_for_the_same_promotion_is_ignored(app, client, promotion):
    variables = {"CD_PROMOTION_ID": str(promotion)}
    post(client, pipeline_event(1000, "running", variables=variables))
    answer = post(client, pipeline_event(1001, "failed", variables=variables))
    assert answer.json["status"] == "ignored"
    assert "duplicate" in answer.json["outcome"]
    row = promotion_row(app, promotion)
    assert (row.state, row.pipeline_id) == ("triggered", 1000)


def test_failed_pipeline_fails_the_promotion_with_the_gitlab_user_in_the_audit_log(
        app, client, promotion):
    variables = {"CD_PROMOTION_ID": str(promotion)}
    post(client, pipeline_event(1000, "running", variables=variables))
    post(client, pipeline_event(1000, "canceled", variables=variables))
    row = promotion_row(app, promotion)
    assert row.state == "failed"
    assert "pipeline 1000 canceled" in row.failure_message
    with session_for(app, write=False) as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "promotion.failed")).one()
    assert entry.actor == "gitlab:qa-lead"


def test_replayed_delivery_changes_nothing(app, client, promotion):
    variables = {"CD_PROMOTION_ID": str(promotion)}
    first = pipeline_event(1000, "running", variables=variables)
    headers = hook_headers(first, SECRET, event_uuid="3b1c7c4e-0f6a-4bd4-9f56-1d9a7f0d3a11")
    assert client.post("/hooks/gitlab", data=json.dumps(first), headers=headers).status_code == 200
    before = snapshot(app)
    again = client.post("/hooks/gitlab", data=json.dumps(first), headers=headers)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    assert snapshot(app) == before


def test_redelivery_with_the_same_idempotency_key_changes_nothing(app, client, promotion):
    payload = deployment_event(9, "failed", environment="staging")
    headers = {**hook_headers(payload, SECRET), "Idempotency-Key": "a3f1"}
    first = client.post("/hooks/gitlab", data=json.dumps(payload), headers=headers)
    assert first.status_code == 200
    before = snapshot(app)
    headers["X-Gitlab-Event-UUID"] = "another-uuid"  # a redelivery gets a new request UUID
    again = client.post("/hooks/gitlab", data=json.dumps(payload), headers=headers)
    assert again.json["status"] == "duplicate"
    assert snapshot(app) == before


def test_deploy_job_that_died_without_reporting_shows_failed(app, client, promotion):
    answer = post(client, deployment_event(9, "failed", environment="staging"))
    assert answer.status_code == 200, answer.json
    with session_for(app, write=False) as session:
        deployment = session.scalars(select(Deployment)).one()
        assert deployment.state == "failed"
        assert "GitLab deployment 9 failed" in deployment.message
        assert deployment.actor == "gitlab:qa-lead"
        assert session.get(Promotion, promotion).state == "failed"
        assert session.scalars(select(GitLabDeployment)).one().status == "failed"


def test_deployment_the_step_already_reported_is_not_overwritten(app, client, promotion):
    from promotion_service.db.models import Image
    from promotion_service.domain.actor import Actor
    from promotion_service.services.reports import add_deployment

    with session_for(app) as session:
        image = session.scalars(select(Image)).one()
        env = environment(session, image_project(session, image), "staging")
        add_deployment(session, Actor("ci", "ci"), image, env, state="succeeded")
    post(client, deployment_event(9, "failed", environment="staging"))
    with session_for(app, write=False) as session:
        assert [d.state for d in session.scalars(select(Deployment))] == ["succeeded"]


def test_deploy_job_that_does_not_report_still_records_the_deployment(app, client, promotion):
    answer = post(client, deployment_event(10, "success", environment="staging"))
    assert "deployed to staging" in answer.json["outcome"]
    with session_for(app, write=False) as session:
        [deployment] = session.scalars(select(Deployment)).all()
        assert (deployment.state, deployment.actor) == ("succeeded", "gitlab:qa-lead")
        assert session.get(Promotion, promotion).state == "deployed"
    again = post(client, deployment_event(11, "success", environment="staging"))
    assert "reported it" in again.json["outcome"]


def test_a_big_pipeline_event_is_accepted_beyond_the_api_body_limit(app, client, promotion):
    event = pipeline_event(1000, "running", variables={"CD_PROMOTION_ID": str(promotion)})
    event["builds"] = [{"id": n, "name": f"job-{n}", "stage": "test", "status": "success",
                        "failure_reason": None, "runner": {"description": "x" * 500}}
                       for n in range(400)]
    assert len(json.dumps(event)) > 2 * app.config["MAX_CONTENT_LENGTH"]
    assert post(client, event).status_code == 200
    assert promotion_row(app, promotion).pipeline_id == 1000


def image_project(session, image):
    from promotion_service.db.models import Project

    return session.get(Project, image.project_id)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (deployment_event(9, "failed", project_id=777, project_path="other/app"), "not known"),
        (deployment_event(9, "failed", environment="review/feature-x"), "not known"),
        (pipeline_event(1000, "failed"), "CD_PROMOTION_ID"),
        (pipeline_event(1000, "failed", variables={"CD_PROMOTION_ID": "999"}), "not known"),
        (job_event(7, "failed", environment=None), "no environment"),
    ],
)
def test_unknown_projects_environments_and_pipelines_are_acknowledged_and_ignored(
        app, client, promotion, payload, why):
    before = snapshot(app)[:2]
    answer = post(client, payload)
    assert answer.status_code == 200
    assert answer.json["status"] == "ignored" and why in answer.json["outcome"]
    assert snapshot(app)[:2] == before


@pytest.mark.parametrize("event", ["Push Hook", "Note Hook", "Wiki Page Hook", "Emoji Hook"])
def test_unknown_event_kinds_are_acknowledged(client, event):
    answer = client.post("/hooks/gitlab", data=json.dumps({"object_kind": "push"}),
                         headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": event,
                                  "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json["status"] == "ignored"


@pytest.mark.parametrize(
    ("body", "event", "status", "message"),
    [
        ("{not json", "Pipeline Hook", 422, "JSON"),
        ("[]", "Pipeline Hook", 422, "JSON object"),
        (json.dumps({"object_kind": "deployment"}), "Deployment Hook", 422, "project.id"),
    ],
)
def test_malformed_deliveries_get_a_clear_4xx_never_a_5xx(client, body, event, status, message):
    answer = client.post("/hooks/gitlab", data=body,
                         headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event": event,
                                  "Content-Type": "application/json"})
    assert answer.status_code == status
    assert message in answer.json["message"]


def test_resend_on_gitlab_without_idempotency_key_is_recognised_by_its_content(
        app, client, promotion):
    """GitLab before Idempotency-Key: "Resend request" is a new request with a new UUID."""
    payload = pipeline_event(1000, "canceled", variables={"CD_PROMOTION_ID": str(promotion)})
    first = post(client, payload, **{"User-Agent": "GitLab/16.11.0"})
    assert first.json["status"] == "processed"
    before = snapshot(app)
    resent = client.post("/hooks/gitlab", data=json.dumps(payload, indent=1, sort_keys=True),
                         headers={**hook_headers(payload, SECRET),
                                  "User-Agent": "GitLab/16.11.0"})
    assert resent.status_code == 200 and resent.json["status"] == "duplicate"
    assert snapshot(app) == before


def test_a_delivery_with_an_idempotency_key_seen_by_content_is_a_duplicate(app, client,
                                                                          promotion):
    """Older GitLab delivered it without a key; after an upgrade it is resent with one."""
    payload = deployment_event(9, "failed", environment="staging")
    assert post(client, payload).json["status"] == "processed"
    again = post(client, payload, **{"Idempotency-Key": "5d1f3e2a"})
    assert again.json["status"] == "duplicate"


def test_different_events_of_one_api_call_are_all_applied(app, client, promotion):
    """GitLab gives the events one API call causes the same X-Gitlab-Event-UUID."""
    variables = {"CD_PROMOTION_ID": str(promotion)}
    uuid = "3b1c7c4e-0f6a-4bd4-9f56-1d9a7f0d3a11"
    for status in ("running", "failed"):
        event = pipeline_event(1000, status, variables=variables)
        answer = client.post("/hooks/gitlab", data=json.dumps(event),
                             headers=hook_headers(event, SECRET, event_uuid=uuid))
        assert answer.json["status"] == "processed"
    assert promotion_row(app, promotion).state == "failed"


MIB = 1024 * 1024


def big_pipeline_event(promotion, size):
    """A pipeline event of about ``size`` bytes (a pipeline of many jobs)."""
    event = pipeline_event(1000, "running", variables={"CD_PROMOTION_ID": str(promotion)})
    runner = {"description": "r" * 4000}
    job = {"id": 0, "name": "job", "stage": "test", "status": "success", "runner": runner}
    event["builds"] = [{**job, "id": n} for n in range(size // 4100)]
    return event


def test_a_hook_body_as_big_as_gitlab_sends_is_accepted(app, client, promotion):
    """GitLab sends webhook bodies up to 25 MiB (WebHookService::REQUEST_BODY_SIZE_LIMIT)."""
    event = big_pipeline_event(promotion, 24 * MIB)
    assert 20 * MIB < len(json.dumps(event)) < 25 * MIB
    answer = post(client, event)
    assert answer.status_code == 200, answer.json
    assert promotion_row(app, promotion).pipeline_id == 1000


def test_a_hook_body_beyond_gitlabs_limit_is_a_json_413(app, client, promotion):
    event = big_pipeline_event(promotion, 26 * MIB)
    assert len(json.dumps(event)) > 25 * MIB
    answer = post(client, event)
    assert answer.status_code == 413 and "message" in answer.json
    assert promotion_row(app, promotion).pipeline_id is None
