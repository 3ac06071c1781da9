"""The GitLab double answers like GitLab: entities, refusals and error bodies as GitLab's source
gives them (named in docker_cd_local/gitlab_double.py), records calls and fails on demand."""

import json
import subprocess
import sys

import pytest
import requests

from promotion_service.gitlab.client import GitLabClient
from promotion_service.gitlab.errors import TerminalGitLabError, TransientGitLabError
from tests.promotion_service.gitlab_fixtures import GITLAB_TOKEN, SHA, TRIGGER_TOKEN
from tests.support import free_port

APPROVER_TOKEN = "glpat-approver"


@pytest.fixture
def gitlab(double):
    """Project 42 afresh, an approver bot and a QA lead who approves in GitLab's UI."""
    double.reset()
    double.add_project(42, "group/app", trigger_token=TRIGGER_TOKEN, refs=("main", "deploy"))
    double.add_user("approver-bot", token=APPROVER_TOKEN)
    double.add_user("qa-lead", token="glpat-qa")
    return double


def api(gitlab, method, path, token=GITLAB_TOKEN, **kwargs):
    return requests.request(method, f"{gitlab.url}/api/v4{path}", timeout=5,
                            headers={"PRIVATE-TOKEN": token} if token else {}, **kwargs)


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


@pytest.mark.parametrize("variables", [{"CD_PROMOTION_ID": 5}, {"X": None}, {"X": ["a"]},
                                       ["CD_IMAGE=x"]])
def test_trigger_variables_must_be_strings(gitlab, variables):
    """lib/api/ci/triggers.rb refuses anything but a map of strings to strings."""
    answer = requests.post(f"{gitlab.url}/api/v4/projects/42/trigger/pipeline", timeout=5,
                           json={"token": TRIGGER_TOKEN, "ref": "main", "variables": variables})
    assert (answer.status_code, answer.json()) == (
        400, {"message": "variables needs to be a map of key-valued strings"})
    assert gitlab.pipelines == []


def test_missing_parameters_get_grapes_error_body(gitlab):
    """Grape validates parameters before the endpoint runs: ``{"error": ...}``, all at once."""
    answer = requests.post(f"{gitlab.url}/api/v4/projects/42/trigger/pipeline", json={},
                           timeout=5)
    assert (answer.status_code, answer.json()) == (
        400, {"error": "ref is missing, token is missing"})


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
        # lib/api/ci/triggers.rb: not_found! for an unknown project or token, no "Project"
        (99, TRIGGER_TOKEN, "main", "HTTP 404: 404 Not Found"),
        (42, "glptt-wrong", "main", "HTTP 404: 404 Not Found"),
        (42, TRIGGER_TOKEN, "nope", "Reference not found"),
    ],
)
def test_refusals_are_terminal_with_gitlabs_message(gitlab, project, token, ref, message):
    with pytest.raises(TerminalGitLabError, match=message):
        GitLabClient(gitlab.url).trigger_pipeline(project, ref, {}, trigger_token=token)
    assert gitlab.pipelines == []


def test_wrong_access_token_is_401_before_any_lookup(gitlab):
    with pytest.raises(TerminalGitLabError, match="401 Unauthorized"):
        GitLabClient(gitlab.url, "glpat-bad").play_job(99, 1)


def test_dropped_connection_and_slow_answer_are_transient(gitlab):
    gitlab.fail("POST", "/projects/42/trigger/pipeline", drop=True)
    gitlab.fail("POST", "/projects/42/jobs/*/play", delay=1.0, status=200)
    with pytest.raises(TransientGitLabError):
        GitLabClient(gitlab.url).trigger_pipeline(42, "main", {}, trigger_token=TRIGGER_TOKEN)
    with pytest.raises(TransientGitLabError, match="in time"):
        GitLabClient(gitlab.url, GITLAB_TOKEN, timeout=0.2).play_job(42, 7)


def test_recorded_calls_are_visible_from_another_process(gitlab):
    GitLabClient(gitlab.url).trigger_pipeline(42, "main", {}, trigger_token=TRIGGER_TOKEN)
    seen = requests.get(f"{gitlab.url}/_double/pipelines", timeout=5).json()
    assert [p["ref"] for p in seen] == ["main"]


def test_the_double_runs_as_a_process(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_cd_local.gitlab_double", "--port", str(port),
         "--access-token", "glpat-p", "--project", f"7:team/svc:{TRIGGER_TOKEN}"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        client = GitLabClient(f"http://127.0.0.1:{port}", "glpat-p")
        assert client.trigger_pipeline("team/svc", "main", {"A": "b"},
                                       trigger_token=TRIGGER_TOKEN).id > 0
        with pytest.raises(TerminalGitLabError, match="404 Not found"):
            client.get_deployment(7, 1)
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- deployments: lib/api/deployments.rb, ee/lib/ee/api/deployments.rb ----------------------
def test_the_list_gives_the_plain_entity_and_only_the_single_get_has_approvals(gitlab):
    gitlab.add_deployment(42, 10, environment="production", job_id=8, sha=SHA)
    gitlab.add_deployment(42, 11, environment="staging", job_id=9, sha=SHA)
    gitlab.approve(42, 10, "qa-lead")
    listed = api(gitlab, "GET", "/projects/42/deployments",
                 params={"environment": "production", "status": "blocked"}).json()
    assert [d["id"] for d in listed] == [10]
    assert not {"approvals", "pending_approval_count", "approval_summary"} & set(listed[0])
    one = api(gitlab, "GET", "/projects/42/deployments/10").json()
    assert [a["user"]["username"] for a in one["approvals"]] == ["qa-lead"]
    assert one["pending_approval_count"] == 0
    client = GitLabClient(gitlab.url, GITLAB_TOKEN)
    [plain] = client.list_deployments(42, environment="production")
    assert (plain.approvals, plain.pending_approval_count) == ((), None)
    assert client.list_deployments(42, environment="production", status="success") == []


def test_the_list_is_oldest_first_unless_asked(gitlab):
    for deployment_id in (12, 10, 11):
        gitlab.add_deployment(42, deployment_id, environment="production",
                              job_id=deployment_id + 100, sha=SHA)
    ids = [d["id"] for d in api(gitlab, "GET", "/projects/42/deployments").json()]
    assert ids == [10, 11, 12]
    ids = [d["id"] for d in api(gitlab, "GET", "/projects/42/deployments",
                                params={"sort": "desc"}).json()]
    assert ids == [12, 11, 10]
    bad = api(gitlab, "GET", "/projects/42/deployments", params={"status": "waiting"})
    assert (bad.status_code, bad.json()) == (400, {"error": "status does not have a valid value"})


def test_a_job_waiting_for_approval_cannot_be_played_until_approved(gitlab):
    """Ci::Build#playable? is false while its deployment waits (EE Deployable)."""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    refused = api(gitlab, "POST", "/projects/42/jobs/7/play")
    assert (refused.status_code, refused.json()) == (
        400, {"message": "400 Bad request - Unplayable Job"})
    gitlab.approve(42, 9, "qa-lead")
    assert gitlab.job(42, 7)["status"] == "manual", "approved jobs wait to be played"
    played = api(gitlab, "POST", "/projects/42/jobs/7/play")
    assert (played.status_code, played.json()["status"]) == (200, "pending")
    assert gitlab.deployment(42, 9)["status"] == "blocked", "until the runner starts the job"
    gitlab.run_job(42, 7, "running")
    assert gitlab.deployment(42, 9)["status"] == "running"
    again = api(gitlab, "POST", "/projects/42/jobs/7/play")
    assert (again.status_code, again.json()["message"]) == (400, "400 Bad request - "
                                                                 "Unplayable Job")


def test_playing_a_finished_manual_job_runs_it_again(gitlab):
    """PlayBuildService retries a job it cannot enqueue: a second play is a second deploy."""
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          required_approvals=0, status="created")
    assert api(gitlab, "POST", "/projects/42/jobs/7/play").status_code == 200
    gitlab.run_job(42, 7, "success")
    again = api(gitlab, "POST", "/projects/42/jobs/7/play")
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (200, 7, "success")
    deployments = api(gitlab, "GET", "/projects/42/deployments").json()
    assert [(d["deployable"]["id"] == 7, d["status"]) for d in deployments] == [
        (True, "success"), (False, "created")]


def test_unknown_job_and_deployment_are_404(gitlab):
    for method, path in (("POST", "/projects/42/jobs/5/play"),
                         ("GET", "/projects/42/deployments/5"),
                         ("POST", "/projects/42/deployments/5/approval")):
        answer = api(gitlab, method, path, json={"status": "approved"})
        assert (answer.status_code, answer.json()) == (404, {"message": "404 Not found"})


@pytest.mark.parametrize(
    ("setup", "token", "body", "status", "answer"),
    [
        # ee/app/services/deployments/approval_service.rb, each check in its order
        ({}, GITLAB_TOKEN, {"status": "approved"}, 400,
         {"message": "You cannot approve your own deployment. This configuration can be "
                     "adjusted in the protected environment settings."}),
        ({"approvers": ("qa-lead",)}, APPROVER_TOKEN, {"status": "approved"}, 400,
         {"message": "You don't have permission to approve this deployment. Contact the "
                     "project or group owner for help."}),
        ({"required_approvals": 0, "status": "created"}, APPROVER_TOKEN,
         {"status": "approved"}, 400, {"message": "This environment is not protected."}),
        ({"status": "success"}, APPROVER_TOKEN, {"status": "approved"}, 400,
         {"message": "This deployment is not waiting for approvals."}),
        ({}, APPROVER_TOKEN, {"status": "ok"}, 400,
         {"error": "status does not have a valid value"}),
        ({}, APPROVER_TOKEN, {}, 400, {"error": "status is missing"}),
    ],
)
def test_approval_refusals(gitlab, setup, token, body, status, answer):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA, **setup)
    refused = api(gitlab, "POST", "/projects/42/deployments/9/approval", token=token, json=body)
    assert (refused.status_code, refused.json()) == (status, answer)
    assert gitlab.deployment(42, 9)["approvals"] == []


def test_approval_by_another_user_counts_once_and_the_last_one_ends_the_wait(gitlab):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA,
                          required_approvals=2)
    first = api(gitlab, "POST", "/projects/42/deployments/9/approval", token=APPROVER_TOKEN,
                json={"status": "approved", "comment": "policy satisfied"})
    assert first.status_code == 201
    assert (first.json()["user"]["username"], first.json()["status"]) == (
        "approver-bot", "approved")
    again = api(gitlab, "POST", "/projects/42/deployments/9/approval", token=APPROVER_TOKEN,
                json={"status": "approved"})
    assert again.status_code == 201 and gitlab.deployment(42, 9)["pending_approval_count"] == 1
    gitlab.approve(42, 9, "qa-lead")
    late = api(gitlab, "POST", "/projects/42/deployments/9/approval", token=APPROVER_TOKEN,
               json={"status": "approved"})
    assert (late.status_code, late.json()["message"]) == (
        400, "This deployment is not waiting for approvals.")


def test_the_pipeline_triggerer_may_approve_when_the_project_allows_it(gitlab):
    gitlab.add_project(42, "group/app", allow_triggerer_to_approve=True)
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    assert api(gitlab, "POST", "/projects/42/deployments/9/approval",
               json={"status": "approved"}).status_code == 201


def test_a_rejection_fails_the_job_and_its_deployment(gitlab):
    gitlab.add_deployment(42, 9, environment="production", job_id=7, sha=SHA)
    gitlab.approve(42, 9, "qa-lead", status="rejected", comment="not yet")
    assert (gitlab.job(42, 7)["status"], gitlab.job(42, 7)["failure_reason"]) == (
        "failed", "deployment_rejected")
    assert gitlab.deployment(42, 9)["status"] == "failed"
    assert api(gitlab, "GET", "/projects/42/deployments",
               params={"status": "blocked"}).json() == []


# -- commit statuses: lib/api/commit_statuses.rb, Ci::CreateCommitStatusService -------------
def post_status(gitlab, state, sha=SHA, token=GITLAB_TOKEN, **fields):
    return api(gitlab, "POST", f"/projects/42/statuses/{sha}", token=token,
               json={"state": state, "ref": "feature", "name": "docker-cd/gate", **fields})


def test_a_second_identical_pending_status_is_refused(gitlab):
    gitlab.add_commit(42, SHA, ref="feature")
    assert post_status(gitlab, "pending").status_code == 201
    again = post_status(gitlab, "pending")
    assert (again.status_code, again.json()) == (400, {
        "message": 'Cannot transition status via :enqueue from :pending (Reason(s): Status '
                   'cannot transition via "enqueue")'})
    assert [s["status"] for s in gitlab.statuses(42, SHA)] == ["pending"]


def test_commit_status_transitions(gitlab):
    gitlab.add_commit(42, SHA, ref="feature")
    assert post_status(gitlab, "running").status_code == 201
    refused = post_status(gitlab, "running")
    assert refused.json()["message"].startswith("Cannot transition status via :run from "
                                                ":running")
    assert post_status(gitlab, "success", description="allowed").status_code == 201
    # a finished status is never updated: the next one is a new status
    assert post_status(gitlab, "pending").status_code == 201
    assert post_status(gitlab, "failed").status_code == 201
    assert [s["status"] for s in gitlab.statuses(42, SHA)] == ["success", "failed"]
    # another user's pending status is theirs: GitLab keeps one per user
    assert post_status(gitlab, "pending").status_code == 201
    assert post_status(gitlab, "pending", token=APPROVER_TOKEN).status_code == 201


def test_commit_status_for_an_unknown_commit_or_state_is_refused(gitlab):
    answer = post_status(gitlab, "success", sha="c" * 40)
    assert (answer.status_code, answer.json()) == (404, {"message": "404 Commit Not Found"})
    gitlab.add_commit(42, SHA)
    answer = post_status(gitlab, "error")
    assert (answer.status_code, answer.json()) == (
        400, {"error": "state does not have a valid value"})


def test_commit_status_without_ref_goes_to_the_commits_branch(gitlab):
    gitlab.add_commit(42, SHA, ref="feature")
    answer = api(gitlab, "POST", f"/projects/42/statuses/{SHA}", json={"state": "success"})
    assert (answer.json()["ref"], answer.json()["name"]) == ("feature", "default")


# -- status checks: ee/lib/api/status_checks.rb ---------------------------------------------
def answer_check(gitlab, sha=SHA, check_id=5, status="passed", iid=12):
    return api(gitlab, "POST", f"/projects/42/merge_requests/{iid}/status_check_responses",
               json={"sha": sha, "external_status_check_id": check_id, "status": status})


def test_a_status_check_response_for_a_stale_sha_is_a_409(gitlab):
    gitlab.add_status_check(42, 5)
    gitlab.add_merge_request(42, 12, sha=SHA)
    assert answer_check(gitlab).status_code == 201
    gitlab.add_merge_request(42, 12, sha="d" * 40)  # a new commit was pushed
    stale = answer_check(gitlab)
    assert (stale.status_code, stale.json()) == (
        409, {"message": f"SHA does not match HEAD of source branch: {'d' * 40}"})


@pytest.mark.parametrize(
    ("kwargs", "status", "answer"),
    [
        ({"iid": 99}, 404, {"message": "404 Not found"}),
        ({"check_id": 6}, 404, {"message": "404 Not found"}),
        ({"status": "success"}, 400, {"error": "status does not have a valid value"}),
        ({"sha": ""}, 400, {"error": "sha is missing"}),
    ],
)
def test_status_check_response_validation(gitlab, kwargs, status, answer):
    gitlab.add_status_check(42, 5)
    gitlab.add_merge_request(42, 12, sha=SHA)
    refused = answer_check(gitlab, **kwargs)
    assert (refused.status_code, refused.json()) == (status, answer)


def test_commit_status_and_status_check_response_through_the_wrapper(gitlab):
    gitlab.add_commit(42, SHA, ref="feature")
    gitlab.add_status_check(42, 5)
    gitlab.add_merge_request(42, 12, sha=SHA)
    client = GitLabClient(gitlab.url, GITLAB_TOKEN)
    client.set_commit_status(42, SHA, "success", ref="feature", description="allowed")
    answer = client.answer_status_check(42, 12, sha=SHA, check_id=5, status="passed")
    assert answer["external_status_check"]["id"] == 5
    [status] = gitlab.statuses(42, SHA)
    assert (status["name"], status["status"], status["author"]["username"]) == (
        "docker-cd/gate", "success", "cd-bot")
    [call] = gitlab.calls_to("POST", "/projects/42/merge_requests/12/status_check_responses")
    assert json.dumps(call.body, sort_keys=True) == json.dumps(
        {"sha": SHA, "external_status_check_id": 5, "status": "passed"}, sort_keys=True)


def trigger(gitlab, promotion_id):
    return requests.post(f"{gitlab.url}/api/v4/projects/42/trigger/pipeline", timeout=5, data={
        "token": TRIGGER_TOKEN, "ref": "main", "variables[CD_PROMOTION_ID]": str(promotion_id)})


def test_random_failures_answer_like_an_overloaded_gitlab_and_create_nothing(gitlab):
    gitlab.fail_randomly("POST", "/projects/*/trigger/pipeline", rate=0.5, seed=1,
                         rate_limit_period=30)
    answers = [trigger(gitlab, n) for n in range(200)]
    by_status = {status: [a for a in answers if a.status_code == status]
                 for status in (201, 429, 500)}
    assert sum(map(len, by_status.values())) == 200
    assert 60 < len(by_status[201]) < 140, "about half go through"
    assert by_status[429] and by_status[500]
    limited = by_status[429][0]  # Rack::Attack's answer (user_and_ip_rate_limits.md)
    assert limited.headers["Content-Type"] == "text/plain"
    assert limited.text == "Retry later\n"
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert int(limited.headers["RateLimit-Reset"]) % 30 == 0
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert by_status[500][0].json() == {"message": "500 Internal Server Error"}
    # a refused trigger starts no pipeline: only the ones answered 201 exist
    assert len(gitlab.pipelines) == len(by_status[201])
    assert [c.status for c in gitlab.calls] == [a.status_code for a in answers]


def test_a_429_is_transient_and_asks_to_wait_until_the_period_ends(gitlab):
    gitlab.fail_randomly("POST", "/projects/*/trigger/pipeline", rate=1, statuses=(429,),
                         rate_limit_period=60)
    with pytest.raises(TransientGitLabError) as raised:
        GitLabClient(gitlab.url).trigger_pipeline("group/app", "main", {},
                                                   trigger_token=TRIGGER_TOKEN)
    assert raised.value.status == 429 and 1 <= raised.value.retry_after <= 60
    assert "Retry later" in str(raised.value)


def test_random_failures_are_forgotten_on_reset(gitlab):
    gitlab.fail_randomly("POST", "/projects/*/trigger/pipeline", rate=1)
    gitlab.reset()
    assert trigger(gitlab, 1).status_code == 201
    with pytest.raises(ValueError, match="between 0 and 1"):
        gitlab.fail_randomly("POST", "/projects/*/trigger/pipeline", rate=10)


def test_triggers_are_counted_per_promotion_strictly(gitlab):
    for promotion_id in (7, 8, 8, 9, 9, 9):
        assert trigger(gitlab, promotion_id).status_code == 201
    api(gitlab, "POST", "/projects/42/pipeline", json={  # not a trigger: not counted
        "ref": "main", "variables": [{"key": "CD_PROMOTION_ID", "value": "7"}]})
    assert gitlab.triggers_per_promotion() == {"7": 1, "8": 2, "9": 3}
    seen = requests.get(f"{gitlab.url}/_double/triggers", timeout=5).json()
    assert seen == {"7": 1, "8": 2, "9": 3}


def test_the_double_process_fails_triggers_on_request(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_cd_local.gitlab_double", "--port", str(port),
         "--project", f"42:group/app:{TRIGGER_TOKEN}", "--fail-rate", "1",
         "--rate-limit-period", "5"], stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        answer = requests.post(f"{url}/api/v4/projects/42/trigger/pipeline", timeout=5,
                               data={"token": TRIGGER_TOKEN, "ref": "main"})
        assert answer.status_code in (429, 500)
    finally:
        process.terminate()
        process.wait(10)
