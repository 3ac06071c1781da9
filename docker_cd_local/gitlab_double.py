"""An HTTP double of the GitLab REST API endpoints docker-cd uses, as strict as GitLab.

Each endpoint answers with the entity, status code and error body GitLab's source gives it
(the file is named beside each rule), records every call, and fails on demand, so tests drive
the promotion service (and whole pipelines) against it without mocking inside the service::

    with GitLabDouble(access_token="glpat-x") as gitlab:
        gitlab.add_project(42, "group/app", trigger_token="glptt-x")
        gitlab.fail("POST", "/projects/42/trigger/pipeline", status=500, times=3)
        ...                                   # run the service with PROMOTION_GITLAB_URL=gitlab.url
        assert gitlab.pipelines[0].variables["CD_TARGET_ENVIRONMENT"] == "staging"

Endpoints (under /api/v4; every one but the trigger wants a PRIVATE-TOKEN of a known user):
    POST /projects/:id/trigger/pipeline            trigger token in `token`, string variables
    POST /projects/:id/pipeline                    GET /projects/:id/pipelines/:id[/variables]
    GET  /projects/:id/jobs/:job_id                POST .../jobs/:job_id/play (refused while
                                                   the deployment awaits approval)
    POST /projects/:id/statuses/:sha               commit-status transition rules
    POST /projects/:id/merge_requests/:iid/status_check_responses   409 for a stale sha
    GET  /projects/:id/deployments                 the plain entity (no approval fields)
    GET  /projects/:id/deployments/:deployment_id  the extended entity (approvals)
    POST /projects/:id/deployments/:deployment_id/approval          GitLab's refusals
GitLab as the issuer of CI/CD ID tokens (docker_cd_local/gitlab_oidc.py):
    GET  /oauth/discovery/keys                     the JWKS GitLab signs ID tokens with
    GET  /.well-known/openid-configuration         its jwks_uri
    ``mint_id_token(audience=, project_path=, pipeline_id=, user_login=, ...)`` signs one.
``fail_randomly(method, path, rate=0.1)`` fails a share of the calls as GitLab does when it is
overloaded: a 500, or Rack::Attack's 429 with Retry-After; ``triggers_per_promotion()`` counts
the pipelines triggered for each CD_PROMOTION_ID (a count above 1 is a duplicate deploy).
Also GET /_double/calls, /_double/pipelines and /_double/triggers (JSON) for looking from
another process, and POST /_double/id_tokens (the claims as JSON) to mint an ID token from there.
Run alone with ``docker-cd-gitlab-double --port 8929`` (installed with docker-cd).
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from docker_cd_local.gitlab_oidc import DISCOVERY_PATH, KEYS_PATH, IdTokenIssuer

__all__ = ["Call", "GitLabDouble", "Pipeline", "User"]

API = "/api/v4"
# GitLab's answers (lib/api/helpers.rb: bad_request!, not_found!; lib/api/api.rb: rescue_from).
NOT_FOUND = "404 Not found"  # ActiveRecord::RecordNotFound, rescued in lib/api/api.rb
UNPLAYABLE = "400 Bad request - Unplayable Job"  # lib/api/ci/jobs.rb, bad_request!
SELF_APPROVAL = ("You cannot approve your own deployment. This configuration can be adjusted "
                 "in the protected environment settings.")
NOT_WAITING = "This deployment is not waiting for approvals."
NOT_APPROVER = ("You don't have permission to approve this deployment. Contact the project or "
                "group owner for help.")
NOT_PROTECTED = "This environment is not protected."
# An unhandled error in the API: lib/api/helpers.rb, handle_api_exception.
INTERNAL_ERROR = "500 Internal Server Error"
# Rack::Attack's throttled response: plain text, configurable in the Admin Area
# (doc/administration/settings/user_and_ip_rate_limits.md, "Response text").
RETRY_LATER = "Retry later\n"
FINISHED = ("success", "failed", "canceled")


@dataclass(frozen=True)
class Call:
    """One request the double received (after any queued failure was applied)."""

    method: str
    path: str  # decoded, relative to /api/v4, e.g. /projects/42/trigger/pipeline
    query: dict[str, str]
    body: Any  # parsed JSON or form (hash syntax folded), else the raw text
    headers: dict[str, str]
    status: int  # what the double answered


@dataclass(frozen=True)
class User:
    """A GitLab user (a person or a project access token's bot)."""

    id: int
    username: str
    name: str

    def as_gitlab(self) -> dict[str, Any]:
        """Entities::UserBasic."""
        return {"id": self.id, "username": self.username, "name": self.name, "state": "active",
                "locked": False, "avatar_url": None,
                "web_url": f"https://gitlab.example.com/{self.username}"}


@dataclass
class Pipeline:
    """A pipeline the double created."""

    id: int
    project_id: int
    ref: str
    source: str  # "trigger" or "api"
    variables: dict[str, str]
    status: str = "created"
    sha: str = "0" * 40
    web_url: str = ""
    created_at: str = ""
    username: str = "cd-bot"

    def as_gitlab(self) -> dict[str, Any]:
        """Entities::Ci::Pipeline."""
        return {
            "id": self.id, "iid": self.id - 999, "project_id": self.project_id, "sha": self.sha,
            "ref": self.ref, "status": self.status, "source": self.source,
            "web_url": self.web_url, "before_sha": "0" * 40, "tag": False, "yaml_errors": None,
            "user": {"id": 1, "username": self.username, "name": self.username},
            "created_at": self.created_at, "updated_at": self.created_at, "started_at": None,
            "finished_at": None, "duration": None, "queued_duration": None, "coverage": None,
            "detailed_status": {"icon": f"status_{self.status}", "text": self.status,
                                "label": self.status, "group": self.status},
        }


@dataclass
class _Job:
    id: int
    name: str
    status: str
    ref: str
    sha: str
    user: User
    pipeline_id: int | None
    environment: str | None = None
    failure_reason: str | None = None

    def as_gitlab(self, project_id: int) -> dict[str, Any]:
        """Entities::Ci::Job (the fields a deploy job has)."""
        return {
            "id": self.id, "name": self.name, "stage": self.name, "status": self.status,
            "ref": self.ref, "tag": False, "coverage": None, "allow_failure": False,
            "created_at": _now(), "started_at": None, "finished_at": None, "duration": None,
            "queued_duration": None, "user": self.user.as_gitlab(),
            "failure_reason": self.failure_reason, "web_url": f"https://gitlab.example.com/"
                                                              f"-/jobs/{self.id}",
            "pipeline": {"id": self.pipeline_id, "project_id": project_id, "ref": self.ref,
                         "sha": self.sha, "status": self.status},
            "commit": {"id": self.sha, "short_id": self.sha[:8]},
        }


@dataclass
class _Deployment:
    id: int
    environment: str
    job: _Job
    status: str
    required_approvals: int  # 0: the environment is not protected by approval rules
    approvers: tuple[str, ...] | None  # usernames the approval rules name; None: any member
    approvals: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: _now())

    @property
    def pending_approval_count(self) -> int:
        """ee/app/models/ee/deployment.rb: [required - approvals, 0].max."""
        return max(self.required_approvals - len(self.approvals), 0)

    def waiting_for_approval(self) -> bool:
        """ee/app/models/ee/deployment.rb#waiting_for_approval?: approvals still pending."""
        return self.status == "blocked" and self.pending_approval_count > 0

    def as_gitlab(self, project_id: int, *, extended: bool) -> dict[str, Any]:
        """Entities::Deployment (the list); Entities::DeploymentExtended adds the approvals
        (ee/lib/ee/api/entities/deployment_extended.rb), only on the single GET."""
        entity = {
            "id": self.id, "iid": self.id, "ref": self.job.ref, "sha": self.job.sha,
            "created_at": self.created_at, "updated_at": _now(),
            "user": self.job.user.as_gitlab(),
            "environment": {"id": 1, "name": self.environment, "external_url": None},
            "deployable": self.job.as_gitlab(project_id), "status": self.status,
        }
        if extended:
            entity.update(pending_approval_count=self.pending_approval_count,
                          approvals=list(self.approvals),
                          approval_summary={"rules": [{
                              "user_id": None, "group_id": None, "access_level": 40,
                              "access_level_description": "Maintainers",
                              "required_approvals": self.required_approvals,
                              "deployment_approvals": list(self.approvals)}]})
        return entity


@dataclass
class _Project:
    id: int
    path: str
    trigger_token: str | None
    trigger_owner: User
    refs: set[str]
    allow_triggerer_to_approve: bool = False  # "Allow pipeline triggerer to approve deployment"
    commits: dict[str, str] = field(default_factory=dict)  # sha -> the branch it is on
    jobs: dict[int, _Job] = field(default_factory=dict)
    deployments: dict[int, _Deployment] = field(default_factory=dict)
    merge_requests: dict[int, str] = field(default_factory=dict)  # iid -> head sha
    status_checks: dict[int, str] = field(default_factory=dict)  # id -> name
    statuses: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Failure:
    method: str
    pattern: str
    status: int
    remaining: int
    body: Any
    headers: dict[str, str]
    delay: float
    drop: bool

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and method == self.method and fnmatch.fnmatchcase(
            path, self.pattern
        )


@dataclass
class _Flakiness:
    """A share of matching calls fails at random (GitLab overloaded or rate limiting)."""

    method: str
    pattern: str
    rate: float
    statuses: tuple[int, ...]
    period: int  # the throttle's period in seconds: Retry-After counts to its end
    rng: random.Random

    def answer(self, method: str, path: str) -> tuple[int, Any, dict[str, str]] | None:
        """The failure this call gets, or None when it goes through."""
        if method != self.method or not fnmatch.fnmatchcase(path, self.pattern):
            return None
        if self.rng.random() >= self.rate:
            return None
        status = self.rng.choice(self.statuses)
        if status != 429:
            return status, {"message": INTERNAL_ERROR if status == 500 else f"{status}"}, {}
        # lib/gitlab/rack_attack.rb, throttled_response_headers: the quota resets at the end
        # of the current period, and Retry-After is the whole seconds until then.
        now = time.time()
        reset = (math.floor(now / self.period) + 1) * self.period
        return 429, RETRY_LATER.encode(), {
            "Content-Type": "text/plain",
            "RateLimit-Name": "throttle_unauthenticated_api", "RateLimit-Limit": "60",
            "RateLimit-Observed": "61", "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset), "RateLimit-ResetTime": formatdate(reset, usegmt=True),
            "Retry-After": str(max(1, math.ceil(reset - now))),
        }


class _GitLabError(Exception):
    """An answer GitLab gives: ``{"message": ...}`` from its helpers, or Grape's
    ``{"error": ...}`` for a parameter that is missing or not one of its values."""

    def __init__(self, status: int, message: Any = None, *, error: str | None = None) -> None:
        super().__init__(message or error)
        self.status = status
        self.body = {"error": error} if error is not None else {"message": message}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require(body: dict[str, Any], *names: str, values: dict[str, tuple[str, ...]] | None = None,
             ) -> None:
    """Grape's parameter validation: every problem at once, as one 400 ``error``."""
    problems = [f"{name} is missing" for name in names if body.get(name) in (None, "")]
    problems += [f"{name} does not have a valid value"
                 for name, allowed in (values or {}).items()
                 if body.get(name) not in (None, "") and body[name] not in allowed]
    if problems:
        raise _GitLabError(400, error=", ".join(problems))


class GitLabDouble:
    """The double: start it on a free 127.0.0.1 port, point the code under test at ``url``.

    ``access_token`` belongs to the user ``cd-bot``, who also owns every trigger token; more
    users (an approver bot, people approving in GitLab's UI) come from ``add_user``. Without
    an access token any caller is ``cd-bot``.
    """

    def __init__(self, *, access_token: str | None = None, port: int = 0) -> None:
        self.access_token = access_token
        self._port = port
        self._lock = threading.RLock()
        self._calls: list[Call] = []
        self._pipelines: list[Pipeline] = []
        self._failures: list[_Failure] = []
        self._flaky: list[_Flakiness] = []
        self._projects: dict[int, _Project] = {}
        self._ids = itertools.count(1000)
        self.bot = User(1, "cd-bot", "CD bot")
        self._users: dict[str, User] = {self.bot.username: self.bot}
        self._tokens: dict[str, User] = {access_token: self.bot} if access_token else {}
        self._server: ThreadingHTTPServer | None = None
        self.id_tokens = IdTokenIssuer()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> GitLabDouble:
        """Listen on 127.0.0.1 (a free port unless one was given) in a daemon thread."""
        double = self

        class Handler(_Handler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="gitlab-double",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitLabDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to give python-gitlab (without /api/v4)."""
        assert self._server is not None, "start() the double first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def mint_id_token(self, **claims: Any) -> str:
        """A CI/CD ID token signed by this GitLab (see IdTokenIssuer.mint for the claims)."""
        return self.id_tokens.mint(self.url, **claims)

    # -- setup -----------------------------------------------------------------------
    def add_user(self, username: str, *, token: str | None = None) -> User:
        """A user; with a token, API calls made with it act as this user."""
        with self._lock:
            user = self._users.get(username) or User(len(self._users) + 100, username,
                                                     username.replace("-", " ").title())
            self._users[username] = user
            if token:
                self._tokens[token] = user
            return user

    def add_project(
        self,
        project_id: int,
        path: str,
        *,
        trigger_token: str | None = None,
        refs: tuple[str, ...] = ("main",),
        allow_triggerer_to_approve: bool = False,
    ) -> None:
        """Make a project known (forgetting an earlier one of that id); others answer 404."""
        with self._lock:
            self._projects[project_id] = _Project(project_id, path, trigger_token, self.bot,
                                                  set(refs), allow_triggerer_to_approve)

    def add_commit(self, project_id: int, sha: str, *, ref: str = "main") -> None:
        """A commit on a branch (commit statuses are refused for commits GitLab lacks)."""
        with self._lock:
            project = self._projects[project_id]
            project.commits[sha] = ref
            project.refs.add(ref)

    def add_merge_request(self, project_id: int, iid: int, *, sha: str) -> None:
        """An open merge request whose source branch's head is ``sha`` (call again to push)."""
        with self._lock:
            self._projects[project_id].merge_requests[iid] = sha

    def add_status_check(self, project_id: int, check_id: int, *, name: str = "docker-cd"
                         ) -> None:
        """An external status check of the project."""
        with self._lock:
            self._projects[project_id].status_checks[check_id] = name

    def add_job(self, project_id: int, job_id: int, *, name: str = "deploy",
                status: str = "manual", pipeline_id: int | None = None, sha: str = "0" * 40,
                ref: str = "main", user: str = "cd-bot") -> None:
        """A job (``manual`` waits to be played); ``user`` is who ran its pipeline."""
        with self._lock:
            self._projects[project_id].jobs[job_id] = _Job(
                job_id, name, status, ref, sha, self.add_user(user), pipeline_id)

    def add_deployment(
        self,
        project_id: int,
        deployment_id: int,
        *,
        environment: str,
        job_id: int,
        sha: str,
        status: str = "blocked",
        ref: str = "main",
        pipeline_id: int | None = None,
        approvals: list[dict[str, Any]] | None = None,
        required_approvals: int = 1,
        approvers: tuple[str, ...] | None = None,
        user: str = "cd-bot",
    ) -> None:
        """A deployment of a protected environment and its job, as GitLab holds it.

        ee/app/services/ee/ci/process_build_service.rb: a job deploying to an environment
        that needs approval is made ``manual`` and its deployment ``blocked``. ``user`` ran
        the pipeline; ``approvers`` are the usernames the approval rules allow.
        """
        self.add_job(project_id, job_id, name=f"deploy-{environment}", pipeline_id=pipeline_id,
                     sha=sha, ref=ref, user=user)
        with self._lock:
            project = self._projects[project_id]
            job = project.jobs[job_id]
            job.environment = environment
            project.deployments[deployment_id] = _Deployment(
                deployment_id, environment, job, status, required_approvals, approvers,
                list(approvals or []))

    def approve(self, project_id: int, deployment_id: int, username: str, *,
                status: str = "approved", comment: str | None = None) -> dict[str, Any]:
        """Someone approves (or rejects) in GitLab's UI: the same rules as the API."""
        with self._lock:
            project = self._projects[project_id]
            return self._approve(project, str(deployment_id), self.add_user(username),
                                 {"status": status, "comment": comment})

    def run_job(self, project_id: int, job_id: int, status: str = "running") -> None:
        """The runner moves a job on; its deployment follows (Deployment#sync_status_with)."""
        with self._lock:
            project = self._projects[project_id]
            project.jobs[job_id].status = status
            self._sync_deployment(project, project.jobs[job_id])

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 500,
        times: int = 1,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        drop: bool = False,
    ) -> None:
        """Answer the next ``times`` matching calls with ``status`` (path is a glob under /api/v4).

        ``delay`` sleeps before answering (to provoke client timeouts, or to hold a call while
        the test kills the caller); ``drop`` closes the connection without an answer. The call
        is recorded as it arrives, with the status it will get.
        """
        if body is None:
            body = {"message": f"{status} Double failure"}
        with self._lock:
            self._failures.append(
                _Failure(method.upper(), path, status, times, body, dict(headers or {}), delay,
                         drop)
            )

    def fail_randomly(self, method: str, path: str, *, rate: float,
                      statuses: tuple[int, ...] = (500, 429), rate_limit_period: int = 60,
                      seed: int | None = None) -> None:
        """Fail ``rate`` (0..1) of the matching calls, each with one of ``statuses`` at random.

        A 500 is GitLab's unhandled-error answer; a 429 is Rack::Attack's: ``Retry later`` as
        plain text, the RateLimit-* headers and Retry-After, the whole seconds to the end of
        the throttle's ``rate_limit_period``. A failed call creates nothing. Until ``reset``.
        """
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        with self._lock:
            self._flaky.append(_Flakiness(method.upper(), path, rate, tuple(statuses),
                                          max(1, int(rate_limit_period)), random.Random(seed)))

    def reset(self) -> None:
        """Forget calls, pipelines and queued failures (projects and users stay)."""
        with self._lock:
            self._calls.clear()
            self._pipelines.clear()
            self._failures.clear()
            self._flaky.clear()

    # -- what happened ---------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        """Every call received, in order."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str, path: str) -> list[Call]:
        """Calls matching a method and a path glob (e.g. ``/projects/*/jobs/*/play``)."""
        return [c for c in self.calls
                if c.method == method.upper() and fnmatch.fnmatchcase(c.path, path)]

    @property
    def pipelines(self) -> list[Pipeline]:
        """Pipelines created (by trigger token or by the pipelines API)."""
        with self._lock:
            return list(self._pipelines)

    def triggers_per_promotion(self) -> Counter[str]:
        """How many pipelines were triggered for each CD_PROMOTION_ID (with the trigger token)."""
        with self._lock:
            return Counter(p.variables.get("CD_PROMOTION_ID", "") for p in self._pipelines
                           if p.source == "trigger")

    def statuses(self, project_id: int, sha: str) -> list[dict[str, Any]]:
        """Commit statuses of a commit, oldest first (what the pipeline page shows)."""
        with self._lock:
            return [dict(s) for s in self._projects[project_id].statuses if s["sha"] == sha]

    def job(self, project_id: int, job_id: int) -> dict[str, Any]:
        """A job as GitLab would return it."""
        with self._lock:
            return self._projects[project_id].jobs[job_id].as_gitlab(project_id)

    def deployment(self, project_id: int, deployment_id: int) -> dict[str, Any]:
        """A deployment as the single GET returns it."""
        with self._lock:
            return self._projects[project_id].deployments[deployment_id].as_gitlab(
                project_id, extended=True)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> Any:
        """Poll until ``predicate(self)`` is truthy; return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"GitLab double: condition not met in {timeout}s")
            time.sleep(0.02)

    # -- request handling ------------------------------------------------------------
    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.matches(method, path):
                    failure.remaining -= 1
                    return failure
            for flaky in self._flaky:
                answer = flaky.answer(method, path)
                if answer is not None:
                    status, body, headers = answer
                    return _Failure(method, path, status, 0, body, headers, 0.0, False)
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _project(self, ident: str, missing: str) -> _Project:
        for project in self._projects.values():
            if ident in (str(project.id), project.path):
                return project
        raise _GitLabError(404, missing)

    def _caller(self, headers: dict[str, str]) -> User:
        """lib/api/api_guard.rb: a PRIVATE-TOKEN that is not a user's is 401."""
        if not self._tokens:
            return self.bot
        user = self._tokens.get(headers.get("private-token") or "")
        if user is None:
            raise _GitLabError(401, "401 Unauthorized")
        return user

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str],
               query: dict[str, str] | None = None) -> tuple[int, Any]:
        """Route one API call (path relative to /api/v4, segments still URL-encoded)."""
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "projects":
            raise _GitLabError(404, "404 Not Found")
        body = body if isinstance(body, dict) else {}
        rest = "/".join(parts[2:])
        with self._lock:
            for verb, pattern, needs_user, answer in self._routes:
                match = re.fullmatch(pattern, rest)
                if verb == method and match:
                    # Authenticated first (401), then the project (404); the trigger has no
                    # user and answers a bare not_found! (lib/api/ci/triggers.rb).
                    user = self._caller(headers) if needs_user else self.bot
                    project = self._project(unquote(parts[1]), "404 Project Not Found"
                                            if needs_user else "404 Not Found")
                    return answer(self, project, user, body, query or {}, *match.groups())
        raise _GitLabError(404, "404 Not Found")

    # -- pipelines: lib/api/ci/triggers.rb, lib/api/ci/pipelines.rb -------------------
    def _trigger(self, project: _Project, _: User, body: dict[str, Any], __: Any) -> tuple:
        _require(body, "ref", "token")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
            raise _GitLabError(400, "variables needs to be a map of key-valued strings")
        if body["token"] != project.trigger_token:
            raise _GitLabError(404, "404 Not Found")  # Ci::PipelineTriggerService gives nil
        return 201, self._new_pipeline(project, body["ref"], "trigger", dict(variables),
                                       project.trigger_owner).as_gitlab()

    def _create_pipeline(self, project: _Project, user: User, body: dict[str, Any], _: Any
                         ) -> tuple:
        _require(body, "ref")
        variables = {str(v["key"]): str(v["value"]) for v in body.get("variables") or []}
        return 201, self._new_pipeline(project, body["ref"], "api", variables,
                                       user).as_gitlab()

    def _new_pipeline(self, project: _Project, ref: str, source: str,
                      variables: dict[str, str], user: User) -> Pipeline:
        if ref not in project.refs:  # Ci::CreatePipelineService: errors on :base
            raise _GitLabError(400, {"base": ["Reference not found"]})
        pipeline_id = next(self._ids)
        pipeline = Pipeline(
            id=pipeline_id, project_id=project.id, ref=ref, source=source, variables=variables,
            web_url=f"{self.url}/{project.path}/-/pipelines/{pipeline_id}", created_at=_now(),
            username=user.username)
        self._pipelines.append(pipeline)
        return pipeline

    def _find_pipeline(self, project: _Project, pipeline_id: str) -> Pipeline:
        for pipeline in self._pipelines:
            if pipeline.project_id == project.id and str(pipeline.id) == pipeline_id:
                return pipeline
        raise _GitLabError(404, NOT_FOUND)

    def _get_pipeline(self, project: _Project, _: User, __: Any, ___: Any, pipeline_id: str
                      ) -> tuple:
        return 200, self._find_pipeline(project, pipeline_id).as_gitlab()

    def _pipeline_variables(self, project: _Project, _: User, __: Any, ___: Any,
                            pipeline_id: str) -> tuple:
        return 200, [{"key": k, "value": v, "variable_type": "env_var"}
                     for k, v in self._find_pipeline(project, pipeline_id).variables.items()]

    # -- jobs: lib/api/ci/jobs.rb, app/services/ci/play_build_service.rb --------------
    def _get_job(self, project: _Project, _: User, __: Any, ___: Any, job_id: str) -> tuple:
        job = project.jobs.get(int(job_id))
        if job is None:
            raise _GitLabError(404, NOT_FOUND)
        return 200, job.as_gitlab(project.id)

    def _play(self, project: _Project, user: User, _: Any, __: Any, job_id: str) -> tuple:
        job = project.jobs.get(int(job_id))
        if job is None:
            raise _GitLabError(404, NOT_FOUND)
        deployment = self._deployment_of(project, job)
        waiting = deployment is not None and deployment.waiting_for_approval()
        # Ci::Build#playable?: a manual job (or a finished one: retryable), not while its
        # deployment waits for approval (ee/app/models/concerns/ee/ci/deployable.rb).
        if job.status not in ("manual", *FINISHED) or waiting:
            raise _GitLabError(400, UNPLAYABLE)
        if job.status == "manual":
            job.status, job.user = "pending", user
        else:  # PlayBuildService: enqueue fails on a finished job, so it is retried: a new job
            self._retry(project, job, user, deployment)
        return 200, job.as_gitlab(project.id)  # the API presents the job it was asked to play

    def _retry(self, project: _Project, job: _Job, user: User,
               deployment: _Deployment | None) -> None:
        retry = _Job(next(self._ids), job.name, "pending", job.ref, job.sha, user,
                     job.pipeline_id, job.environment)
        project.jobs[retry.id] = retry
        if deployment is not None:  # a new deployment, held again if approvals are required
            held = deployment.required_approvals > 0
            retry.status = "manual" if held else "pending"
            new_id = next(self._ids)
            project.deployments[new_id] = _Deployment(
                new_id, deployment.environment, retry, "blocked" if held else "created",
                deployment.required_approvals, deployment.approvers)

    def _deployment_of(self, project: _Project, job: _Job) -> _Deployment | None:
        return next((d for d in project.deployments.values() if d.job is job), None)

    def _sync_deployment(self, project: _Project, job: _Job) -> None:
        """app/models/deployment.rb#sync_status_with: a job's pending is no deployment status."""
        deployment = self._deployment_of(project, job)
        if deployment is not None and job.status in ("running", *FINISHED):
            deployment.status = job.status

    # -- commit statuses: lib/api/commit_statuses.rb, Ci::CreateCommitStatusService ---
    def _commit_status(self, project: _Project, user: User, body: dict[str, Any], _: Any,
                       sha: str) -> tuple:
        _require(body, "state", values={
            "state": ("pending", "running", "success", "failed", "canceled", "skipped")})
        if sha not in project.commits:
            raise _GitLabError(404, "404 Commit Not Found")
        ref = body.get("ref") or project.commits[sha]
        name = body.get("name") or body.get("context") or "default"
        # find_or_build_external_commit_status: only a running or pending status of this
        # name, ref and user is updated; otherwise a new one starts as ``created``.
        status = next((s for s in reversed(project.statuses)
                       if (s["sha"], s["ref"], s["name"], s["author"]["id"]) ==
                       (sha, ref, name, user.id) and s["status"] in ("pending", "running")),
                      None)
        current = status["status"] if status else "created"
        new = _transition(current, body["state"])
        if status is None:
            status = {"id": next(self._ids), "sha": sha, "ref": ref, "name": name,
                      "author": user.as_gitlab(), "created_at": _now(), "started_at": None,
                      "finished_at": None, "allow_failure": False, "coverage": None}
            project.statuses.append(status)
        status.update(status=new, target_url=body.get("target_url"),
                      description=body.get("description"))
        return 201, dict(status)

    # -- status checks: ee/lib/api/status_checks.rb -----------------------------------
    def _status_check_response(self, project: _Project, _: User, body: dict[str, Any],
                               __: Any, iid: str) -> tuple:
        _require(body, "external_status_check_id", "sha", "status",
                 values={"status": ("passed", "failed", "pending")})
        head = project.merge_requests.get(int(iid))
        check_id = int(body["external_status_check_id"])
        if head is None or check_id not in project.status_checks:
            raise _GitLabError(404, NOT_FOUND)
        if body["sha"] != head:  # lib/api/helpers.rb#check_sha_param!
            raise _GitLabError(409, f"SHA does not match HEAD of source branch: {head}")
        return 201, {"id": next(self._ids),
                     "merge_request": {"iid": int(iid), "project_id": project.id, "sha": head},
                     "external_status_check": {"id": check_id,
                                               "name": project.status_checks[check_id],
                                               "project_id": project.id}}

    # -- deployments: lib/api/deployments.rb, ee/lib/ee/api/deployments.rb ------------
    def _list_deployments(self, project: _Project, _: User, __: Any, query: dict[str, str]
                          ) -> tuple:
        if query.get("status") not in (None, "created", "running", "success", "failed",
                                       "canceled", "blocked"):
            raise _GitLabError(400, error="status does not have a valid value")
        found = [d for d in project.deployments.values()
                 if query.get("status") in (None, d.status)
                 and query.get("environment") in (None, d.environment)]
        found.sort(key=lambda d: d.id, reverse=query.get("sort") == "desc")  # default asc
        per_page = int(query.get("per_page") or 20)
        return 200, [d.as_gitlab(project.id, extended=False) for d in found[:per_page]]

    def _find_deployment(self, project: _Project, deployment_id: str) -> _Deployment:
        deployment = project.deployments.get(int(deployment_id))
        if deployment is None:
            raise _GitLabError(404, NOT_FOUND)
        return deployment

    def _get_deployment(self, project: _Project, _: User, __: Any, ___: Any,
                        deployment_id: str) -> tuple:
        return 200, self._find_deployment(project, deployment_id).as_gitlab(project.id,
                                                                            extended=True)

    def _approval(self, project: _Project, user: User, body: dict[str, Any], _: Any,
                  deployment_id: str) -> tuple:
        return 201, self._approve(project, deployment_id, user, body)

    def _approve(self, project: _Project, deployment_id: str, user: User,
                 body: dict[str, Any]) -> dict[str, Any]:
        """ee/app/services/deployments/approval_service.rb, its checks in its order (400)."""
        _require(body, "status", values={"status": ("approved", "rejected")})
        deployment = self._find_deployment(project, deployment_id)
        status = body["status"]
        if deployment.required_approvals == 0:
            raise _GitLabError(400, NOT_PROTECTED)
        if (deployment.job.user == user and status == "approved"
                and not project.allow_triggerer_to_approve):
            raise _GitLabError(400, SELF_APPROVAL)
        if not deployment.waiting_for_approval():
            raise _GitLabError(400, NOT_WAITING)
        if deployment.approvers is not None and user.username not in deployment.approvers:
            raise _GitLabError(400, NOT_APPROVER)
        given = next((a for a in deployment.approvals if a["user"]["id"] == user.id), None)
        if given is None:
            given = {"user": user.as_gitlab(), "status": status, "created_at": _now(),
                     "comment": body.get("comment")}
            deployment.approvals.append(given)
        elif given["status"] != status:
            given.update(status=status, comment=body.get("comment"))
        if status == "rejected":  # process_build!: the job is dropped, its deployment follows
            deployment.job.status, deployment.job.failure_reason = "failed", "deployment_rejected"
            self._sync_deployment(project, deployment.job)
        # With approval rules the job stays manual once approved: someone must play it.
        return dict(given)

    _routes: tuple[tuple[str, str, bool, Callable[..., tuple]], ...] = (
        ("POST", r"trigger/pipeline", False, _trigger),
        ("POST", r"pipeline", True, _create_pipeline),
        ("GET", r"pipelines/(\d+)", True, _get_pipeline),
        ("GET", r"pipelines/(\d+)/variables", True, _pipeline_variables),
        ("GET", r"jobs/(\d+)", True, _get_job),
        ("POST", r"jobs/(\d+)/play", True, _play),
        ("POST", r"statuses/([^/]+)", True, _commit_status),
        ("POST", r"merge_requests/(\d+)/status_check_responses", True, _status_check_response),
        ("GET", r"deployments", True, _list_deployments),
        ("GET", r"deployments/(\d+)", True, _get_deployment),
        ("POST", r"deployments/(\d+)/approval", True, _approval),
    )


_EVENTS = {"pending": "enqueue", "running": "run", "success": "success", "failed": "drop",
           "canceled": "cancel", "skipped": "skip"}
# app/models/commit_status.rb: the states each event leaves from (the external job's subset).
_FROM = {"enqueue": ("created", "skipped", "manual", "scheduled"), "run": ("pending",),
         "skip": ("created", "pending"), "drop": ("created", "pending", "running"),
         "success": ("created", "pending", "running"), "cancel": ("created", "pending", "running")}


def _transition(current: str, state: str) -> str:
    """apply_job_state!: ``running`` enqueues (quietly) then runs; any illegal event is 400."""
    if state == "running" and current == "created":
        current = "pending"
    event = _EVENTS[state]
    if current not in _FROM[event]:
        raise _GitLabError(400, f"Cannot transition status via :{event} from :{current} "
                                f"(Reason(s): Status cannot transition via \"{event}\")")
    return state


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return {}
    text = raw.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        form: dict[str, Any] = {}
        for key, values in parse_qs(text, keep_blank_values=True).items():
            hashed = re.fullmatch(r"(\w+)\[(\w+)\]", key)
            if hashed:
                form.setdefault(hashed.group(1), {})[hashed.group(2)] = values[-1]
            else:
                form[key] = values[-1]
        return form
    return text


class _Handler(BaseHTTPRequestHandler):
    owner: GitLabDouble
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK of the headers (40 ms a call on Linux), which GitLab never costs.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests look at .calls

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = _parse_body(raw, headers.get("content-type", ""))
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}

        if split.path in (KEYS_PATH, DISCOVERY_PATH) and method == "GET":
            issuer = self.owner.id_tokens
            self._send(200, issuer.jwks() if split.path == KEYS_PATH
                       else issuer.discovery(self.owner.url))
            return
        if split.path == "/_double/id_tokens" and method == "POST":
            self._send(201, {"token": self.owner.mint_id_token(**body)})
            return
        if split.path.startswith("/_double/"):
            owner = self.owner
            what = split.path.removeprefix("/_double/")
            data = {"calls": [asdict(c) for c in owner.calls],
                    "pipelines": [asdict(p) for p in owner.pipelines],
                    "triggers": dict(owner.triggers_per_promotion())}.get(what)
            self._send(200 if data is not None else 404, data or {"message": "404 Not Found"})
            return
        if not split.path.startswith(API + "/"):
            self._send(404, {"message": "404 Not Found"})
            return
        raw_path = split.path.removeprefix(API)
        path = unquote(raw_path)
        failure = self.owner._take_failure(method, path)
        if failure is not None:
            # Recorded on arrival, so a test sees a call that is still being held (delay).
            self.owner._record(Call(method, path, query, body, headers, failure.status))
            if failure.delay:
                time.sleep(failure.delay)
            if failure.drop:
                self.close_connection = True
                self.connection.close()
                return
            self._send(failure.status, failure.body, failure.headers)
            return
        try:
            status, answer = self.owner.handle(method, raw_path, body, headers, query)
        except _GitLabError as e:
            status, answer = e.status, e.body
        self.owner._record(Call(method, path, query, body, headers, status))
        self._send(status, answer)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        headers = {"Content-Type": "application/json", **(headers or {})}
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a provoked timeout)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")


def main(argv: list[str] | None = None) -> None:
    """Serve the double in the foreground (for manual runs and other processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8929)
    parser.add_argument("--access-token", default=None)
    parser.add_argument("--project", action="append", default=[],
                        help="ID:PATH[:TRIGGER_TOKEN], repeatable")
    parser.add_argument("--fail-rate", type=float, default=0.0,
                        help="fail this share (0..1) of pipeline triggers with 500 or 429")
    parser.add_argument("--rate-limit-period", type=int, default=60,
                        help="seconds of the throttle period a 429's Retry-After counts to")
    args = parser.parse_args(argv)
    double = GitLabDouble(access_token=args.access_token, port=args.port)
    for spec in args.project:
        pid, path, *token = spec.split(":", 2)
        double.add_project(int(pid), path, trigger_token=token[0] if token else None)
    if args.fail_rate:
        double.fail_randomly("POST", "/projects/*/trigger/pipeline", rate=args.fail_rate,
                             rate_limit_period=args.rate_limit_period)
    double.start()
    print(double.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
