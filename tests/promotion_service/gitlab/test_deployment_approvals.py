"""Deployment approvals both ways: GitLab's recorded in the service, the service's mirrored to
GitLab, and the waiting job played once policy is satisfied."""

import pytest
from sqlalchemy import select

from promotion_service.db import session_for
from promotion_service.db.gitlab_models import GitLabDeployment
from promotion_service.db.models import ApprovalRecord, AuditEntry, Verification
from promotion_service.domain.actor import Actor
from promotion_service.gitlab.client import GitLabClient
from promotion_service.gitlab.deployment_approvals import sync_blocked_deployments
from promotion_service.outbox.dispatcher import Dispatcher
from promotion_service.outbox.settings import DispatcherSettings
from promotion_service.services import approvals
from tests.promotion_service.gitlab_fixtures import (
    GITLAB_TOKEN,
    SHA,
    environment,
    make_image,
    make_project,
)

QA_APPROVAL = {"user": {"id": 100, "username": "qa-lead", "name": "QA Lead"},
               "status": "approved", "created_at": "2026-11-26T16:05:00.000Z",
               "comment": "checked staging"}


@pytest.fixture
def gitlab(double):
    double.reset()
    double.add_project(42, "group/app")  # forget deployments of earlier tests
    return double


@pytest.fixture
def app(app, gitlab):
    app.config.update(GITLAB_URL=gitlab.url, GITLAB_TOKEN=GITLAB_TOKEN,
                      GITLAB_DEPLOYMENT_APPROVALS="1", GITLAB_PLAY_APPROVED_JOBS="1")
    return app


@pytest.fixture
def image_id(app):
    """An image verified in staging, waiting for one approval for production."""
    with session_for(app) as session:
        project = make_project(session, policies={
            "test": {}, "staging": {}, "production": {"required_approvals": 1}})
        image = make_image(session, project)
        session.add(Verification(image_id=image.id, passed=True, actor="ci",
                                 environment_id=environment(session, project, "staging").id))
        return image.id


def sync(app):
    with session_for(app) as session:
        return sync_blocked_deployments(session, app.config)


def dispatch(app, gitlab):
    Dispatcher(lambda: session_for(app), GitLabClient(gitlab.url, GITLAB_TOKEN),
               DispatcherSettings()).run_once()


def test_approval_given_in_gitlab_is_recorded_with_the_gitlab_user(app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    assert sync(app) >= 1
    with session_for(app, write=False) as session:
        [record] = session.scalars(select(ApprovalRecord)).all()
        # GitLab's user qa-lead is the person qa-lead: one identity, given in GitLab's UI
        assert (record.image_id, record.actor, record.decision, record.given_in) == (
            image_id, "qa-lead", "approve", "gitlab")
        assert "checked staging" in record.comment
        audit = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "approval.approve")).one()
        assert audit.actor == "qa-lead"
    sync(app)  # seen already: not recorded twice
    with session_for(app, write=False) as session:
        assert len(session.scalars(select(ApprovalRecord)).all()) == 1


def test_a_gitlab_approval_by_whoever_ran_the_pipeline_is_refused_by_four_eyes(app, gitlab):
    """Bypass (a): GitLab's `QA-Lead` is the person qa-lead, who ran this image's pipeline."""
    with session_for(app) as session:
        project = make_project(session, policies={
            "test": {}, "staging": {}, "production": {"required_approvals": 1,
                                                       "four_eyes": True}})
        image = make_image(session, project)
        image.triggered_by = "qa-lead"
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA, approvals=[
        QA_APPROVAL | {"user": {"id": 100, "username": "QA-Lead", "name": "QA Lead"}}])
    sync(app)
    with session_for(app, write=False) as session:
        assert session.scalars(select(ApprovalRecord)).all() == []
    assert gitlab.calls_to("POST", "/projects/42/jobs/7/play") == []


def test_once_policy_is_satisfied_the_waiting_job_is_played_once(app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    sync(app)
    dispatch(app, gitlab)
    sync(app)
    dispatch(app, gitlab)
    assert [c.status for c in gitlab.calls_to("POST", "/projects/42/jobs/7/play")] == [200]
    with session_for(app, write=False) as session:
        assert session.scalars(select(GitLabDeployment)).one().played_at is not None


def test_approval_given_in_the_service_is_mirrored_to_gitlab_then_the_job_plays(
        app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    sync(app)
    dispatch(app, gitlab)
    assert gitlab.calls_to("POST", "/projects/*/deployments/*/approval") == []
    with session_for(app) as session:
        from promotion_service.db.models import Environment, Image

        image = session.get(Image, image_id)
        production = session.scalars(select(Environment).where(
            Environment.name == "production")).one()
        approvals.record_decision(session, Actor("alice", "approver"), image, production,
                         decision="approve", comment="looks good")
    sync(app)
    dispatch(app, gitlab)
    [mirrored] = gitlab.calls_to("POST", "/projects/42/deployments/9/approval")
    assert mirrored.body["status"] == "approved" and "alice" in mirrored.body["comment"]
    assert gitlab.calls_to("POST", "/projects/42/jobs/7/play") == [], "GitLab still waited"
    sync(app)
    dispatch(app, gitlab)
    assert len(gitlab.calls_to("POST", "/projects/42/jobs/7/play")) == 1
    assert len(gitlab.calls_to("POST", "/projects/42/deployments/9/approval")) == 1


def test_rejection_in_gitlab_blocks_the_gate_and_nothing_is_played(app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[{**QA_APPROVAL, "status": "rejected"}])
    sync(app)
    dispatch(app, gitlab)
    with session_for(app, write=False) as session:
        assert session.scalars(select(ApprovalRecord)).one().decision == "reject"
    assert gitlab.calls_to("POST", "/projects/42/jobs/*/play") == []


def test_nothing_is_asked_of_gitlab_unless_enabled(app, gitlab, image_id):
    app.config["GITLAB_DEPLOYMENT_APPROVALS"] = ""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    assert sync(app) == 0
    assert gitlab.calls == []


def test_gitlab_unreachable_is_logged_and_retried_next_time(app, gitlab, image_id):
    gitlab.fail("GET", "/projects/42/deployments", status=503)
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    assert sync(app) == 0
    assert sync(app) >= 1


@pytest.mark.parametrize(("setting", "played"), [("group/other,group/app", 1), ("group/other", 0),
                                                 ("", 0)])
def test_only_projects_that_ask_get_their_job_played(app, gitlab, image_id, setting, played):
    app.config["GITLAB_PLAY_APPROVED_JOBS"] = setting
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    sync(app)
    dispatch(app, gitlab)
    assert len(gitlab.calls_to("POST", "/projects/42/jobs/7/play")) == played
