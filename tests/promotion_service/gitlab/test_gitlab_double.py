"""The GitLab double answers the wrapper like GitLab does, records calls and fails on demand."""

import pytest
import requests

from promotion_service.gitlab.client import GitLabClient
from promotion_service.gitlab.errors import TerminalGitLabError, TransientGitLabError
from tests.promotion_service.gitlab_fixtures import GITLAB_TOKEN, SHA, TRIGGER_TOKEN


def test_trigger_records_one_pipeline_with_its_variables(gitlab):
    client = GitLabClient(gitlab.url)
    pipeline = client.trigger_pipeline(
        "group/app", "main", {"CD_IMAGE": "r@sha256:ab"}, trigger_token=TRIGGER_TOKEN
    )
    [recorded] = gitlab.pipelines
    assert (recorded.id, recorded.source, recorded.variables) == (
        pipeline.id, "trigger", {"CD_IMAGE": "r@sha256:ab"}
    )
    assert pipeline.web_url == f"{gitlab.url}/group/app/-/pipelines/{pipeline.id}"


def test_form_encoded_trigger_like_curl_is_understood(gitlab):
    answer = requests.post(
        f"{gitlab.url}/api/v4/projects/42/trigger/pipeline",
        data={"token": TRIGGER_TOKEN, "ref": "main", "variables[CD_IMAGE]": "r@sha256:ab"},
        timeout=5,
    )
    assert answer.status_code == 201
    assert gitlab.pipelines[0].variables == {"CD_IMAGE": "r@sha256:ab"}


def test_queued_failures_answer_first_then_the_endpoint_works(gitlab):
    gitlab.fail("POST", "/projects/42/pipeline", status=500, times=3)
    client = GitLabClient(gitlab.url, GITLAB_TOKEN)
    for _ in range(3):
        with pytest.raises(TransientGitLabError):
            client.trigger_pipeline(42, "deploy", {})
    client.trigger_pipeline(42, "deploy", {})
    assert [c.status for c in gitlab.calls_to("POST", "/projects/42/pipeline")] == [
        500, 500, 500, 201
    ]
    assert len(gitlab.pipelines) == 1


def test_rate_limit_answer_carries_retry_after(gitlab):
    gitlab.fail("POST", "/projects/*/pipeline", status=429, headers={"Retry-After": "3"})
    with pytest.raises(TransientGitLabError) as caught:
        GitLabClient(gitlab.url, GITLAB_TOKEN).trigger_pipeline(42, "main", {})
    assert caught.value.retry_after == 3


@pytest.mark.parametrize(
    ("project", "token", "ref", "message"),
    [
        (99, TRIGGER_TOKEN, "main", "Project Not Found"),
        (42, "glptt-wrong", "main", "404 Not Found"),
        (42, TRIGGER_TOKEN, "nope", "Reference not found"),
    ],
)
def test_refusals_are_terminal_with_gitlabs_message(gitlab, project, token, ref, message):
    with pytest.raises(TerminalGitLabError, match=message):
        GitLabClient(gitlab.url).trigger_pipeline(project, ref, {}, trigger_token=token)
    assert gitlab.pipelines == []


def test_wrong_access_token_is_terminal(gitlab):
    with pytest.raises(TerminalGitLabError, match="401"):
        GitLabClient(gitlab.url, "glpat-bad").play_job(42, 1)


def test_dropped_connection_and_slow_answer_are_transient(gitlab):
    gitlab.fail("POST", "/projects/42/trigger/pipeline", drop=True)
    gitlab.fail("POST", "/projects/42/jobs/*/play", delay=1.0, status=200)
    with pytest.raises(TransientGitLabError):
        GitLabClient(gitlab.url).trigger_pipeline(42, "main", {}, trigger_token=TRIGGER_TOKEN)
    with pytest.raises(TransientGitLabError, match="in time"):
        GitLabClient(gitlab.url, GITLAB_TOKEN, timeout=0.2).play_job(42, 7)


def test_blocked_deployment_can_be_read_approved_and_its_job_played(gitlab):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    client = GitLabClient(gitlab.url, GITLAB_TOKEN)
    assert client.get_deployment(42, 9).status == "blocked"
    client.approve_deployment(42, 9, comment="ok")
    client.play_job(42, 7)
    deployment = client.get_deployment(42, 9)
    assert deployment.status == "running"
    assert [a.comment for a in deployment.approvals] == ["ok"]
    with pytest.raises(TerminalGitLabError, match="Unplayable"):
        client.play_job(42, 7)


def test_commit_status_and_status_check_response_are_recorded(gitlab):
    client = GitLabClient(gitlab.url, GITLAB_TOKEN)
    client.set_commit_status(42, SHA, "success", ref="feature", description="allowed")
    client.answer_status_check(42, 12, sha=SHA, check_id=5, status="passed")
    [status] = gitlab.calls_to("POST", f"/projects/42/statuses/{SHA}")
    assert status.body["name"] == "docker-cd/gate"
    [answer] = gitlab.calls_to("POST", "/projects/42/merge_requests/12/status_check_responses")
    assert answer.body == {"sha": SHA, "external_status_check_id": 5, "status": "passed"}


def test_recorded_calls_are_visible_from_another_process(gitlab):
    GitLabClient(gitlab.url).trigger_pipeline(42, "main", {}, trigger_token=TRIGGER_TOKEN)
    seen = requests.get(f"{gitlab.url}/_double/pipelines", timeout=5).json()
    assert [p["ref"] for p in seen] == ["main"]


def test_blocked_deployments_are_listed_by_environment_and_status(gitlab):
    gitlab.add_deployment(42, 10, environment="production", job_id=8, sha=SHA)
    gitlab.add_deployment(42, 11, environment="staging", job_id=9, sha=SHA)
    client = GitLabClient(gitlab.url, GITLAB_TOKEN)
    [blocked] = client.list_deployments(42, environment="production")
    assert (blocked.id, blocked.job_id, blocked.pending_approval_count) == (10, 8, 1)
    assert client.list_deployments(42, environment="production", status="success") == []
