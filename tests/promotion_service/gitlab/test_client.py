"""The python-gitlab wrapper against GitLab-shaped answers (responses), every call and failure."""

import json

import pytest
import requests
import responses
from responses import matchers

from promotion_service.gitlab.client import GitLabClient
from promotion_service.gitlab.errors import (
    TerminalGitLabError,
    TransientGitLabError,
    error_from_response,
)

URL = "https://gitlab.example.com"
API = f"{URL}/api/v4"
SHA = "2695effb5807a22ff3d138d593fd856244e155e7"

pipeline_content = {
    "id": 287,
    "iid": 144,
    "project_id": 42,
    "sha": SHA,
    "ref": "main",
    "status": "created",
    "source": "trigger",
    "web_url": "https://gitlab.example.com/group/app/-/pipelines/287",
    "before_sha": "0000000000000000000000000000000000000000",
    "tag": False,
    "yaml_errors": None,
    "user": {"id": 1, "username": "root", "name": "Administrator"},
    "created_at": "2026-11-26T16:00:00.000Z",
    "updated_at": "2026-11-26T16:00:00.000Z",
    "started_at": None,
    "finished_at": None,
    "duration": None,
    "queued_duration": None,
    "coverage": None,
    "detailed_status": {"icon": "status_created", "text": "created", "group": "created"},
}

job_content = {
    "id": 7,
    "name": "deploy-production",
    "stage": "deploy-production",
    "status": "pending",
    "ref": "main",
    "tag": False,
    "pipeline": {"id": 287, "project_id": 42, "ref": "main", "sha": SHA, "status": "running"},
    "web_url": "https://gitlab.example.com/group/app/-/jobs/7",
    "user": {"id": 1, "username": "root"},
}

commit_status_content = {
    "id": 93,
    "sha": SHA,
    "ref": "feature",
    "status": "success",
    "name": "docker-cd/gate",
    "target_url": "https://cd.example.com/images/1",
    "description": "allowed",
    "created_at": "2026-11-26T16:00:00.000Z",
    "started_at": None,
    "finished_at": "2026-11-26T16:00:00.000Z",
    "allow_failure": False,
    "coverage": None,
    "author": {"id": 1, "username": "cd-bot"},
}

status_check_response_content = {
    "id": 2,
    "merge_request": {"id": 1, "iid": 12, "project_id": 42, "title": "Add a feature"},
    "external_status_check": {
        "id": 5,
        "name": "docker-cd",
        "project_id": 42,
        "external_url": "https://cd.example.com/hooks/gitlab/status-check",
        "protected_branches": [],
    },
}

approval_content = {
    "user": {"id": 100, "username": "qa-lead", "name": "QA Lead", "state": "active"},
    "status": "approved",
    "created_at": "2026-11-26T16:05:00.000Z",
    "comment": "tested in staging",
}

# GET /projects/:id/deployments lists Entities::Deployment: no approval fields.
deployment_list_item = {
    "id": 9,
    "iid": 3,
    "ref": "main",
    "sha": SHA,
    "status": "blocked",
    "created_at": "2026-11-26T16:00:00.000Z",
    "updated_at": "2026-11-26T16:05:00.000Z",
    "user": {"id": 1, "username": "root", "name": "Administrator"},
    "environment": {"id": 12, "name": "production", "external_url": "https://app.example.com"},
    "deployable": {
        "id": 7,
        "name": "deploy-production",
        "stage": "deploy-production",
        "status": "manual",
        "ref": "main",
        "tag": False,
        "pipeline": {"id": 287, "sha": SHA, "ref": "main", "status": "manual", "web_url": "u"},
    },
}

# GET /projects/:id/deployments/:id gives Entities::DeploymentExtended (EE adds approvals).
deployment_content = {
    **deployment_list_item,
    "pending_approval_count": 1,
    "approvals": [approval_content],
    "approval_summary": {"rules": [{
        "user_id": None, "group_id": None, "access_level": 40,
        "access_level_description": "Maintainers", "required_approvals": 2,
        "deployment_approvals": [approval_content]}]},
}


@pytest.fixture
def client():
    return GitLabClient(URL, "glpat-secret")


@pytest.fixture
def anonymous():
    return GitLabClient(URL)


@pytest.fixture
def approver():
    return GitLabClient(URL, "glpat-secret", approver_token="glpat-approver")


@responses.activate
def test_trigger_with_trigger_token_sends_ref_token_and_variables(anonymous):
    responses.post(
        f"{API}/projects/42/trigger/pipeline",
        json=pipeline_content,
        status=201,
        match=[
            matchers.json_params_matcher(
                {
                    "ref": "main",
                    "token": "glptt-trigger",
                    "variables": {"CD_IMAGE": "r/app@sha256:ab", "CD_PROMOTION_ID": "5"},
                }
            )
        ],
    )
    pipeline = anonymous.trigger_pipeline(
        42, "main", {"CD_IMAGE": "r/app@sha256:ab", "CD_PROMOTION_ID": 5},
        trigger_token="glptt-trigger",
    )
    assert (pipeline.id, pipeline.status) == (287, "created")
    assert pipeline.web_url.endswith("/pipelines/287")


@responses.activate
def test_trigger_without_trigger_token_uses_pipelines_api_with_variable_list(client):
    responses.post(
        f"{API}/projects/group%2Fapp/pipeline",
        json=pipeline_content,
        status=201,
        match=[
            matchers.header_matcher({"PRIVATE-TOKEN": "glpat-secret"}),
            matchers.json_params_matcher(
                {
                    "ref": "deploy",
                    "variables": [{"key": "CD_TARGET_ENVIRONMENT", "value": "staging"}],
                }
            ),
        ],
    )
    pipeline = client.trigger_pipeline("group/app", "deploy", {"CD_TARGET_ENVIRONMENT": "staging"})
    assert pipeline.id == 287


def test_calls_needing_an_access_token_say_which_setting_is_missing(anonymous):
    with pytest.raises(TerminalGitLabError, match="PROMOTION_GITLAB_TOKEN"):
        anonymous.trigger_pipeline(42, "main", {})
    with pytest.raises(TerminalGitLabError, match="PROMOTION_GITLAB_TOKEN"):
        anonymous.play_job(42, 7)


FAILURES = [
    # status, body, headers, expected class, expected text, retry_after
    (500, {"message": "500 Internal Server Error"}, {}, TransientGitLabError, "500 Internal", None),
    (502, "<html>Bad Gateway</html>", {}, TransientGitLabError, "Bad Gateway", None),
    (503, {"message": "503 Service Unavailable"}, {}, TransientGitLabError, "Unavailable", None),
    (429, {"message": "Retry later"}, {"Retry-After": "7"}, TransientGitLabError, "Retry later", 7),
    (409, {"message": "409 Resource lock"}, {}, TransientGitLabError, "Resource lock", None),
    (408, {"message": "408 Request Timeout"}, {}, TransientGitLabError, "Request Timeout", None),
    (422, {"message": "422 Unprocessable"}, {}, TerminalGitLabError, "Unprocessable", None),
    (401, {"message": "401 Unauthorized"}, {}, TerminalGitLabError, "401 Unauthorized", None),
    (403, {"message": "403 Forbidden"}, {}, TerminalGitLabError, "403 Forbidden", None),
    (404, {"message": "404 Project Not Found"}, {}, TerminalGitLabError, "Project Not Found", None),
    (
        400,
        {"message": {"base": ["Reference not found"]}},
        {},
        TerminalGitLabError,
        "Reference not found",
        None,
    ),
    (400, {"error": "variables is invalid"}, {}, TerminalGitLabError, "variables is invalid", None),
]


@pytest.mark.parametrize(("status", "body", "headers", "cls", "text", "retry_after"), FAILURES)
@responses.activate
def test_trigger_failures_are_classified(client, status, body, headers, cls, text, retry_after):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    responses.post(f"{API}/projects/42/pipeline", status=status, headers=headers, **kwargs)
    with pytest.raises(cls) as caught:
        client.trigger_pipeline(42, "main", {"CD_IMAGE": "x"})
    assert caught.value.status == status
    assert text in str(caught.value)
    assert "trigger a pipeline in project 42 on main" in str(caught.value)
    assert caught.value.retry_after == retry_after
    assert len(responses.calls) == 1, "the wrapper must not retry by itself"


@pytest.mark.parametrize(
    ("exception", "text"),
    [
        (requests.ConnectTimeout("timed out"), "did not answer in time"),
        (requests.ReadTimeout("read timed out"), "did not answer in time"),
        (requests.ConnectionError("[Errno 111] Connection refused"), "connection refused"),
    ],
)
@responses.activate
def test_network_failures_are_transient(client, exception, text):
    responses.post(f"{API}/projects/42/trigger/pipeline", body=exception)
    with pytest.raises(TransientGitLabError, match=text):
        client.trigger_pipeline(42, "main", {}, trigger_token="glptt-trigger")
    assert len(responses.calls) == 1


@responses.activate
def test_error_messages_never_contain_the_trigger_token(client):
    responses.post(
        f"{API}/projects/42/trigger/pipeline", status=404, json={"message": "404 Not Found"}
    )
    with pytest.raises(TerminalGitLabError) as caught:
        client.trigger_pipeline(42, "main", {}, trigger_token="glptt-trigger")
    assert "glptt-trigger" not in str(caught.value)


def test_retry_after_accepts_an_http_date_and_rate_limit_reset():
    error = error_from_response(429, "slow down", {"RateLimit-Reset": "9999999999"})
    assert error.retry_after > 1000
    error = error_from_response(429, "x", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert error.retry_after == 0.0
    assert error_from_response(429, "x", {}).retry_after is None


@responses.activate
def test_play_job(client):
    responses.post(f"{API}/projects/42/jobs/7/play", json=job_content)
    assert client.play_job(42, 7)["status"] == "pending"


@responses.activate
def test_job_status(client):
    responses.get(f"{API}/projects/42/jobs/7", json={**job_content, "status": "manual"})
    assert client.job_status(42, 7) == "manual"


@responses.activate
def test_play_job_that_is_not_playable_is_terminal(client):
    responses.post(  # lib/api/ci/jobs.rb: bad_request!("Unplayable Job")
        f"{API}/projects/42/jobs/7/play", status=400,
        json={"message": "400 Bad request - Unplayable Job"}
    )
    with pytest.raises(TerminalGitLabError, match="Unplayable Job"):
        client.play_job(42, 7)


@responses.activate
def test_commit_status_is_named_docker_cd_gate_and_description_is_bounded(client):
    responses.post(f"{API}/projects/42/statuses/{SHA}", json=commit_status_content, status=201)
    client.set_commit_status(
        42, SHA, "failed", ref="feature", description="x" * 400, target_url="https://cd/i/1"
    )
    sent = json.loads(responses.calls[0].request.body)
    assert sent["name"] == "docker-cd/gate"
    assert (sent["state"], sent["ref"], sent["target_url"]) == ("failed", "feature", "https://cd/i/1")
    assert len(sent["description"]) == 255


@responses.activate
def test_commit_status_illegal_transition_is_terminal(client):
    responses.post(
        f"{API}/projects/42/statuses/{SHA}",
        status=400,
        json={"message": 'Cannot transition status via :run from :running (Reason(s): '
                         'Status cannot transition via "run")'},
    )
    with pytest.raises(TerminalGitLabError, match="Cannot transition"):
        client.set_commit_status(42, SHA, "running", ref="feature")


@responses.activate
def test_commit_status_locked_by_another_update_is_transient(client):
    responses.post(  # lib/api/commit_statuses.rb: conflict! when the service's lock is held
        f"{API}/projects/42/statuses/{SHA}", status=409,
        json={"message": "409 Conflict - Another update to this commit status is in progress"})
    with pytest.raises(TransientGitLabError, match="in progress"):
        client.set_commit_status(42, SHA, "pending", ref="feature")


@responses.activate
def test_status_check_response_for_a_stale_sha_is_terminal(client):
    responses.post(  # lib/api/helpers.rb#check_sha_param!
        f"{API}/projects/42/merge_requests/12/status_check_responses", status=409,
        json={"message": f"SHA does not match HEAD of source branch: {'d' * 40}"})
    with pytest.raises(TerminalGitLabError, match="does not match HEAD") as caught:
        client.answer_status_check(42, 12, sha=SHA, check_id=5, status="passed")
    assert caught.value.status == 409


@responses.activate
def test_status_check_response(client):
    responses.post(
        f"{API}/projects/42/merge_requests/12/status_check_responses",
        json=status_check_response_content,
        status=201,
        match=[
            matchers.json_params_matcher(
                {"sha": SHA, "external_status_check_id": 5, "status": "failed"}
            )
        ],
    )
    answer = client.answer_status_check(42, 12, sha=SHA, check_id=5, status="failed")
    assert answer["external_status_check"]["id"] == 5


def test_status_check_response_rejects_unknown_status(client):
    with pytest.raises(ValueError, match="passed, failed or pending"):
        client.answer_status_check(42, 12, sha=SHA, check_id=5, status="ok")


@responses.activate
def test_deployment_approval_is_sent_as_the_approver_not_the_pipelines_user(approver):
    responses.post(
        f"{API}/projects/42/deployments/9/approval",
        json={**approval_content, "user": {"id": 7, "username": "approver-bot"}},
        status=201,
        match=[
            matchers.header_matcher({"PRIVATE-TOKEN": "glpat-approver"}),
            matchers.json_params_matcher(
                {"status": "approved", "comment": "tested in staging", "represented_as": "QA"}
            )
        ],
    )
    answer = approver.approve_deployment(
        42, 9, comment="tested in staging", represented_as="QA"
    )
    assert answer["user"]["username"] == "approver-bot"


def test_deployment_approval_without_an_approver_token_names_the_variable(client):
    assert not client.can_approve
    with pytest.raises(TerminalGitLabError, match="PROMOTION_GITLAB_APPROVER_TOKEN"):
        client.approve_deployment(42, 9)


@responses.activate
def test_deployment_approval_refused_for_self_approval_says_what_to_change(approver):
    responses.post(  # ee/app/services/deployments/approval_service.rb, rendered as a 400
        f"{API}/projects/42/deployments/9/approval",
        status=400,
        json={"message": "You cannot approve your own deployment. This configuration can be "
                         "adjusted in the protected environment settings."},
    )
    with pytest.raises(TerminalGitLabError, match="approve your own deployment") as caught:
        approver.approve_deployment(42, 9)
    assert "PROMOTION_GITLAB_APPROVER_TOKEN" in str(caught.value)


@responses.activate
def test_get_deployment_reads_job_pipeline_and_approvals(client):
    responses.get(f"{API}/projects/42/deployments/9", json=deployment_content)
    deployment = client.get_deployment(42, 9)
    assert (deployment.status, deployment.environment) == ("blocked", "production")
    assert (deployment.job_id, deployment.pipeline_id, deployment.sha) == (7, 287, SHA)
    assert [(a.username, a.status) for a in deployment.approvals] == [("qa-lead", "approved")]
    assert (deployment.pending_approval_count, deployment.job_status, deployment.user) == (
        1, "manual", "root")
    assert deployment.waits_for_approval and not deployment.playable


@responses.activate
def test_list_blocked_deployments_of_an_environment(client):
    responses.get(
        f"{API}/projects/42/deployments",
        json=[deployment_list_item],
        match=[
            matchers.query_param_matcher(
                {"environment": "production", "status": "blocked", "order_by": "id",
                 "sort": "desc", "per_page": "20"}
            )
        ],
    )
    [deployment] = client.list_deployments(42, environment="production")
    assert (deployment.id, deployment.job_id) == (9, 7)
    # the list says nothing of approvals: neither waiting nor playable can be told from it
    assert (deployment.approvals, deployment.pending_approval_count) == ((), None)
    assert not deployment.playable


@responses.activate
def test_list_deployments_of_unknown_project_is_terminal(client):
    responses.get(f"{API}/projects/99/deployments", status=404,
                  json={"message": "404 Project Not Found"})
    with pytest.raises(TerminalGitLabError, match="Project Not Found"):
        client.list_deployments(99, environment="production")
