"""Deployment approvals both ways, against a GitLab that answers as GitLab does: approvals read
from the single deployment, the service's approval given as another user than the pipelines',
and the held job played only once GitLab no longer waits (and again if GitLab refused)."""

import pytest
from sqlalchemy import select

from promotion_service.db import session_for
from promotion_service.db.gitlab_models import GitLabDeployment
from promotion_service.db.models import (
    ApprovalRecord,
    AuditEntry,
    Environment,
    Outbox,
    Release,
    Verification,
)
from promotion_service.domain.actor import Actor
from promotion_service.gitlab.deployment_approvals import sync_blocked_deployments
from promotion_service.outbox import dispatcher
from promotion_service.services import approvals
from tests.promotion_service.gitlab_fixtures import (
    GITLAB_TOKEN,
    SHA,
    environment,
    make_project,
    make_release,
)

APPROVER_TOKEN = "glpat-approver"
QA_APPROVAL = {"user": {"id": 100, "username": "qa-lead", "name": "QA Lead"},
               "status": "approved", "created_at": "2026-11-26T16:05:00.000Z",
               "comment": "checked staging"}


@pytest.fixture
def gitlab(double):
    double.reset()
    double.add_project(42, "group/app")  # forget deployments of earlier tests
    double.add_user("approver-bot", token=APPROVER_TOKEN)
    double.add_user("qa-lead")
    return double


@pytest.fixture
def app(app, gitlab):
    app.config.update(GITLAB_URL=gitlab.url, GITLAB_TOKEN=GITLAB_TOKEN,
                      GITLAB_APPROVER_TOKEN=APPROVER_TOKEN,
                      GITLAB_DEPLOYMENT_APPROVALS="1", GITLAB_PLAY_APPROVED_JOBS="1")
    return app


@pytest.fixture
def image_id(app):
    """An image verified in staging, waiting for one approval for production."""
    with session_for(app) as session:
        project = make_project(session, policies={
            "test": {}, "staging": {}, "production": {"required_approvals": 1}})
        image = make_release(session, project)
        session.add(Verification(release_id=image.id, passed=True, actor="ci",
                                 environment_id=environment(session, project, "staging").id))
        return image.id


def sync(app):
    with session_for(app) as session:
        return sync_blocked_deployments(session, app.config)


def dispatch(app, gitlab):
    """Send what the sync queued, with the GitLab settings the service has."""
    dispatcher.from_app(app).run_once()


def approve_in_service(app, image_id, name="alice"):
    with session_for(app) as session:
        image = session.get(Release, image_id)
        production = session.scalars(select(Environment).where(
            Environment.name == "production")).one()
        approvals.record_decision(session, Actor(name, "approver"), image, production,
                                  decision="approve", comment="looks good")


def outbox_rows(app, kind):
    with session_for(app, write=False) as session:
        return [(r.state, r.last_error) for r in session.scalars(
            select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id))]


def plays(gitlab):
    return [c.status for c in gitlab.calls_to("POST", "/projects/42/jobs/*/play")]


def test_approval_given_in_gitlab_is_recorded_with_the_gitlab_user(app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    gitlab.approve(42, 9, "qa-lead", comment="checked staging")
    assert sync(app) >= 1
    assert gitlab.calls_to("GET", "/projects/42/deployments/9"), "approvals need the single GET"
    with session_for(app, write=False) as session:
        [record] = session.scalars(select(ApprovalRecord)).all()
        # GitLab's user qa-lead is the person qa-lead: one identity, given in GitLab's UI
        assert (record.release_id, record.actor, record.decision, record.given_in) == (
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
        image = make_release(session, project)
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
    sync(app)  # GitLab keeps the deployment blocked until the runner starts the job
    dispatch(app, gitlab)
    assert plays(gitlab) == [200]
    assert gitlab.job(42, 7)["status"] == "pending"
    with session_for(app, write=False) as session:
        assert session.scalars(select(GitLabDeployment)).one().played_at is not None


def test_no_play_while_gitlab_still_waits_for_an_approval(app, gitlab, image_id):
    """The service's policy is satisfied, GitLab's rules want one more approval."""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL], required_approvals=2,
                          approvers=("qa-lead", "sre-lead"))
    for _ in range(2):
        sync(app)
        dispatch(app, gitlab)
    assert plays(gitlab) == [], "GitLab answers 400 Unplayable Job while it waits"
    gitlab.approve(42, 9, "sre-lead")
    sync(app)
    dispatch(app, gitlab)
    assert plays(gitlab) == [200]


def test_approval_given_in_the_service_is_given_in_gitlab_as_the_approver_then_the_job_plays(
        app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    sync(app)
    dispatch(app, gitlab)
    assert gitlab.calls_to("POST", "/projects/*/deployments/*/approval") == []
    approve_in_service(app, image_id)
    sync(app)
    dispatch(app, gitlab)
    [mirrored] = gitlab.calls_to("POST", "/projects/42/deployments/9/approval")
    assert mirrored.status == 201 and mirrored.headers["private-token"] == APPROVER_TOKEN
    assert mirrored.body["status"] == "approved" and "alice" in mirrored.body["comment"]
    [given] = gitlab.deployment(42, 9)["approvals"]
    assert given["user"]["username"] == "approver-bot", "not cd-bot, who ran the pipeline"
    assert plays(gitlab) == [], "GitLab still waited when the sync ran"
    sync(app)
    dispatch(app, gitlab)
    assert plays(gitlab) == [200]
    assert len(gitlab.calls_to("POST", "/projects/42/deployments/9/approval")) == 1


def test_without_an_approver_token_the_service_does_not_approve_in_gitlab(app, gitlab,
                                                                         image_id):
    app.config["GITLAB_APPROVER_TOKEN"] = None
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    approve_in_service(app, image_id)
    sync(app)
    dispatch(app, gitlab)
    assert gitlab.calls_to("POST", "/projects/*/deployments/*/approval") == []
    assert outbox_rows(app, "deployment_approval") == []
    assert plays(gitlab) == [], "GitLab still waits for its approval"


def test_an_approver_who_ran_the_pipeline_is_refused_with_what_to_change(app, gitlab,
                                                                         image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          user="approver-bot")
    approve_in_service(app, image_id)
    sync(app)
    dispatch(app, gitlab)
    [(state, error)] = outbox_rows(app, "deployment_approval")
    assert state == "failed"
    assert "cannot approve your own deployment" in error
    assert "PROMOTION_GITLAB_APPROVER_TOKEN" in error


def test_an_approval_gitlab_no_longer_needs_is_settled_not_failed(app, gitlab, image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    approve_in_service(app, image_id)
    sync(app)  # queues the approval...
    gitlab.approve(42, 9, "qa-lead")  # ...which QA gives in GitLab before it is sent
    dispatch(app, gitlab)
    [(state, outcome)] = outbox_rows(app, "deployment_approval")
    assert state == "sent" and "not waiting for approvals" in outcome


def test_a_play_gitlab_refuses_is_tried_again_and_never_counted_as_played(app, gitlab,
                                                                        image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    gitlab.fail("POST", "/projects/42/jobs/7/play", status=400,
                body={"message": "400 Bad request - Unplayable Job"})
    sync(app)
    dispatch(app, gitlab)
    assert plays(gitlab) == [400]
    [(state, outcome)] = outbox_rows(app, "play_job")
    assert state == "sent" and "not played" in outcome
    with session_for(app, write=False) as session:
        assert session.scalars(select(GitLabDeployment)).one().played_at is None
    sync(app)
    dispatch(app, gitlab)
    assert plays(gitlab) == [400, 200]
    assert gitlab.job(42, 7)["status"] == "pending"


def test_a_job_that_ran_is_never_played_again(app, gitlab, image_id):
    """Playing a finished manual job runs it again in GitLab: a second deployment."""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    sync(app)
    dispatch(app, gitlab)
    gitlab.run_job(42, 7, "success")
    for _ in range(2):
        sync(app)
        dispatch(app, gitlab)
    assert plays(gitlab) == [200]


def test_a_queued_play_of_a_job_that_ran_meanwhile_is_not_sent(app, gitlab, image_id):
    """A retried play whose first answer was lost, or a job someone played by hand: GitLab
    would run the finished job again."""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    sync(app)  # queues the play
    gitlab.run_job(42, 7, "success")
    dispatch(app, gitlab)
    assert plays(gitlab) == []
    [(state, outcome)] = outbox_rows(app, "play_job")
    assert state == "sent" and "is success, not manual" in outcome


def test_rejection_in_gitlab_after_the_sync_saw_the_deployment_is_recorded(app, gitlab,
                                                                           image_id):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    sync(app)
    gitlab.approve(42, 9, "qa-lead", status="rejected", comment="not yet")
    assert gitlab.deployment(42, 9)["status"] == "failed", "GitLab fails a rejected job"
    sync(app)
    dispatch(app, gitlab)
    with session_for(app, write=False) as session:
        [record] = session.scalars(select(ApprovalRecord)).all()
        assert (record.actor, record.decision) == ("qa-lead", "reject")  # the person
        assert session.scalars(select(GitLabDeployment)).one().status == "failed"
    assert plays(gitlab) == []


def test_nothing_is_asked_of_gitlab_unless_enabled(app, gitlab, image_id):
    app.config["GITLAB_DEPLOYMENT_APPROVALS"] = ""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          approvals=[QA_APPROVAL])
    assert sync(app) == 0
    assert gitlab.calls == []


def test_gitlab_unreachable_is_logged_and_retried_next_time(app, gitlab, image_id):
    gitlab.fail("GET", "/projects/42/deployments/9", status=503)
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
    assert len(plays(gitlab)) == played
