"""The service as a real process against the GitLab double: exactly one pipeline per promotion,
whatever GitLab or the process does; webhooks with a wrong token or replayed change nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from docker_cd_local.gitlab_double import GitLabDouble
from promotion_service import create_app
from promotion_service.db import session_for
from promotion_service.domain.actor import Actor
from promotion_service.services import tokens as token_store
from tests.promotion_service.gitlab_payloads import (
    SHA,
    deployment_event,
    hook_headers,
    merge_request_check,
    signed,
)
from tests.support import free_port, wait_for_http

TRIGGER_TOKEN = "glptt-integration"
ACCESS_TOKEN = "glpat-integration"
HOOK_SECRET = "hook-secret-integration"
CHECK_SECRET = "check-secret-integration"
REPOSITORY = "registry.example.com/group/app"
BAD_SHA = "b" * 40
POLICIES = {"defaults": {"environments": [
    {"name": "test", "max_severity": "high"},
    {"name": "staging", "auto_promote": True},
    {"name": "production", "required_approvals": 1},
]}}


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


class Service:
    """`promotion-service serve` in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from promotion_service.cli import main; "
             "sys.exit(main())", "serve",
             "--bind", f"127.0.0.1:{self.port}"],
            env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for_http(f"{self.url}/health", timeout=30)
        requests.get(f"{self.url}/health", timeout=5)  # starts the dispatcher thread
        return self

    def kill(self) -> None:
        """SIGKILL the process: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def gitlab():
    with GitLabDouble(access_token=ACCESS_TOKEN) as double:
        double.add_project(42, "group/app", trigger_token=TRIGGER_TOKEN)
        yield double


@pytest.fixture
def service_db(request, tmp_path):
    """SQLite unless a test asks (indirect parametrize) for PostgreSQL too."""
    if getattr(request, "param", "sqlite") == "postgres":
        return request.getfixturevalue("postgres_url")
    path = tmp_path / "promotion.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


BOTH_DATABASES = pytest.mark.parametrize(
    "service_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def environment(gitlab, service_db, tmp_path):
    """Everything the service process needs, and bearer tokens made in its database."""
    database_url = service_db
    gitlab.reset()
    policy = tmp_path / "policies.yml"
    policy.write_text(yaml.safe_dump(POLICIES))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROMOTION_")},
        "PROMOTION_DATABASE_URL": database_url,
        "PROMOTION_POLICY_FILE": str(policy),
        "PROMOTION_GITLAB_URL": gitlab.url,
        "PROMOTION_GITLAB_TOKEN": ACCESS_TOKEN,
        "PROMOTION_GITLAB_TRIGGER_TOKEN": TRIGGER_TOKEN,
        "PROMOTION_WEBHOOK_SECRET": HOOK_SECRET,
        "PROMOTION_GITLAB_STATUS_CHECK_SECRET": CHECK_SECRET,
        "PROMOTION_DISPATCHER_THREAD": "1",
        "PROMOTION_DISPATCHER_POLL_SECONDS": "0.1",
        "PROMOTION_DISPATCHER_BACKOFF_SECONDS": "0.2",
        "PROMOTION_DISPATCHER_BACKOFF_MAX_SECONDS": "1",
        "PROMOTION_DISPATCHER_LEASE_SECONDS": "3",
        "PROMOTION_GITLAB_TIMEOUT_SECONDS": "1",
        "PROMOTION_WORKER_PERIODIC_SECONDS": "0.5",
    }
    app = create_app({"DATABASE_URL": database_url, "POLICY_FILE": str(policy)})
    with session_for(app) as session:
        ci = token_store.create(session, Actor.system("tests"), name="ci", role="ci",
                                project="group/app")[1]
    return env, {"Authorization": f"Bearer {ci}"}


@pytest.fixture
def service(environment, tmp_path):
    env, _ = environment
    started = []

    def start() -> Service:
        started.append(Service(env, tmp_path / "service.log").start())
        return started[-1]

    yield start
    for s in started:
        s.stop()


def verified_in_test(url: str, auth: dict[str, str], n: int = 1, sha: str = SHA,
                     counts: dict[str, int] | None = None) -> None:
    """What the pipeline of a commit reports; the service then auto-promotes to staging."""
    ref = {"repository": REPOSITORY, "digest": digest(n)}
    calls = [
        ("images", {**ref, "project": "group/app", "gitlab_project_id": 42, "commit_sha": sha}),
        ("scans", {**ref, "counts": counts or {"critical": 0, "high": 0}}),
        ("deployments", {**ref, "environment": "test", "state": "succeeded"}),
        ("verifications", {**ref, "environment": "test", "passed": True}),
    ]
    for path, body in calls:
        answer = requests.post(f"{url}/api/v1/{path}", json=body, headers=auth, timeout=10)
        assert answer.status_code in (200, 201), (path, answer.text)


def promotions(url: str, auth: dict[str, str]) -> list[dict]:
    answer = requests.get(f"{url}/api/v1/promotions", params={"environment": "staging"},
                          headers=auth, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def settle(gitlab: GitLabDouble, seconds: float = 1.0) -> None:
    """Give any (wrong) extra dispatch the time to happen before counting."""
    time.sleep(seconds)


@BOTH_DATABASES
def test_a_promotion_triggers_exactly_one_pipeline(gitlab, environment, service):
    _, auth = environment
    url = service().url
    verified_in_test(url, auth)
    [pipeline] = gitlab.wait_for(lambda g: g.pipelines)
    settle(gitlab)
    assert len(gitlab.pipelines) == 1
    [promotion] = promotions(url, auth)
    assert pipeline.variables == {"CD_IMAGE": f"{REPOSITORY}@{digest(1)}",
                                  "CD_IMAGE_APP": f"{REPOSITORY}@{digest(1)}",
                                  "CD_RELEASE_ID": str(promotion["release_id"]),
                                  "CD_RELEASE_COMMIT": SHA,
                                  "CD_TARGET_ENVIRONMENT": "staging",
                                  "CD_PROMOTION_ID": str(promotion["id"])}
    promotion = gitlab.wait_for(lambda g: (p := promotions(url, auth)[0])["pipeline_id"] and p)
    assert (promotion["state"], promotion["pipeline_id"]) == ("triggered", pipeline.id)
    assert promotion["pipeline_url"] == pipeline.web_url


def test_gitlab_failing_three_times_still_gives_one_pipeline(gitlab, environment, service):
    _, auth = environment
    gitlab.fail("POST", "/projects/42/trigger/pipeline", status=500, times=3)
    url = service().url
    verified_in_test(url, auth)
    gitlab.wait_for(lambda g: g.pipelines)
    settle(gitlab)
    assert len(gitlab.pipelines) == 1
    statuses = [c.status for c in gitlab.calls_to("POST", "/projects/42/trigger/pipeline")]
    assert statuses == [500, 500, 500, 201]


@BOTH_DATABASES
def test_killed_after_commit_before_send_sends_once_after_restart(gitlab, environment, service):
    _, auth = environment
    # GitLab holds the trigger call: the service has committed and claimed, and is sending.
    gitlab.fail("POST", "/projects/42/trigger/pipeline", status=502, delay=20)
    first = service()
    verified_in_test(first.url, auth)
    gitlab.wait_for(lambda g: g.calls_to("POST", "/projects/42/trigger/pipeline"), timeout=15)
    first.kill()
    assert gitlab.pipelines == []
    second = service()
    gitlab.wait_for(lambda g: g.pipelines, timeout=30)
    settle(gitlab, 4)  # longer than the lease: a second send would have happened by now
    assert len(gitlab.pipelines) == 1
    [promotion] = promotions(second.url, auth)
    assert promotion["pipeline_id"] == gitlab.pipelines[0].id


def test_webhooks_with_a_wrong_token_or_replayed_change_nothing(gitlab, environment, service):
    _, auth = environment
    url = service().url
    verified_in_test(url, auth)
    gitlab.wait_for(lambda g: promotions(url, auth)[0]["pipeline_id"])

    def state():
        audit = requests.get(f"{url}/api/v1/audit", headers=auth, timeout=10)
        return promotions(url, auth), audit.json() if audit.ok else audit.status_code

    event = deployment_event(77, "failed", environment="staging")
    body = json.dumps(event)
    before = state()
    for token in ("wrong", None):
        refused = requests.post(f"{url}/hooks/gitlab", data=body,
                                headers=hook_headers(event, token), timeout=10)
        assert refused.status_code == 401
    assert state() == before

    headers = hook_headers(event, HOOK_SECRET)
    first = requests.post(f"{url}/hooks/gitlab", data=body, headers=headers, timeout=10)
    assert first.status_code == 200 and first.json()["status"] == "processed"
    [promotion] = promotions(url, auth)
    assert promotion["state"] == "failed" and "GitLab deployment 77" in promotion[
        "failure_message"]
    after_first = state()
    replay = requests.post(f"{url}/hooks/gitlab", data=body, headers=headers, timeout=10)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert state() == after_first


def test_merge_request_status_checks_are_answered_through_gitlabs_api(
        gitlab, environment, service):
    _, auth = environment
    url = service().url
    verified_in_test(url, auth, n=1, sha=SHA)
    verified_in_test(url, auth, n=2, sha=BAD_SHA, counts={"critical": 3, "high": 0})
    for iid, sha in ((12, SHA), (13, BAD_SHA)):
        body, headers = signed(merge_request_check(iid, sha=sha), CHECK_SECRET)
        answer = requests.post(f"{url}/hooks/gitlab/status-check", data=body, headers=headers,
                               timeout=10)
        assert answer.status_code == 200, answer.text
    answers = gitlab.wait_for(lambda g: len(r := g.calls_to(
        "POST", "/projects/42/merge_requests/*/status_check_responses")) == 2 and r)
    assert sorted((c.path.split("/")[4], c.body["status"]) for c in answers) == [
        ("12", "passed"), ("13", "failed")]
    checks = requests.get(f"{url}/api/v1/merge-request-checks", params={"mr_iid": 13},
                          headers=auth, timeout=10).json()
    assert checks[0]["reasons"][0]["code"] == "scan_failed"
    assert "3 critical" in checks[0]["reasons"][0]["message"]
