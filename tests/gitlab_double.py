"""A small in-repo HTTP double of the GitLab REST API endpoints docker-cd uses.

It answers like GitLab (same paths, status codes and JSON shapes), records every
call, and fails on demand, so tests can drive the promotion service (and whole
pipelines) against it without mocking anything inside the service::

    with GitLabDouble() as gitlab:
        gitlab.add_project(42, "group/app", trigger_token="glptt-x")
        gitlab.fail("POST", "/projects/42/trigger/pipeline", status=500, times=3)
        ...                                   # run the service with PROMOTION_GITLAB_URL=gitlab.url
        assert len(gitlab.pipelines) == 1
        assert gitlab.pipelines[0].variables["CD_TARGET_ENVIRONMENT"] == "staging"

Endpoints (under /api/v4):
    POST /projects/:id/trigger/pipeline            trigger token in `token`
    POST /projects/:id/pipeline                    access token (PRIVATE-TOKEN)
    GET  /projects/:id/pipelines/:pipeline_id      and .../variables
    POST /projects/:id/jobs/:job_id/play
    POST /projects/:id/statuses/:sha
    POST /projects/:id/merge_requests/:iid/status_check_responses
    GET  /projects/:id/deployments?environment=&status=   and /projects/:id/deployments/:id
    POST /projects/:id/deployments/:deployment_id/approval
GitLab as the issuer of CI/CD ID tokens (tests/gitlab_oidc.py):
    GET  /oauth/discovery/keys                     the JWKS GitLab signs ID tokens with
    GET  /.well-known/openid-configuration         its jwks_uri
    ``mint_id_token(audience=, project_path=, pipeline_id=, user_login=, ...)`` signs one.
Also GET /_double/calls and /_double/pipelines (JSON) for looking from another process, and
POST /_double/id_tokens (the claims as JSON) to mint an ID token from there.
Run alone with ``python -m tests.gitlab_double --port 8929``.
"""

from __future__ import annotations

import argparse
import fnmatch
import itertools
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.gitlab_oidc import DISCOVERY_PATH, KEYS_PATH, IdTokenIssuer

__all__ = ["Call", "GitLabDouble", "Pipeline"]

API = "/api/v4"


@dataclass(frozen=True)
class Call:
    """One request the double received (after any queued failure was applied)."""

    method: str
    path: str  # decoded, relative to /api/v4, e.g. /projects/42/trigger/pipeline
    query: dict[str, str]
    body: Any  # parsed JSON or form (hash syntax folded), else the raw text
    headers: dict[str, str]
    status: int  # what the double answered


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

    def as_gitlab(self) -> dict[str, Any]:
        """The pipeline object as GitLab returns it."""
        return {
            "id": self.id,
            "iid": self.id - 999,
            "project_id": self.project_id,
            "sha": self.sha,
            "ref": self.ref,
            "status": self.status,
            "source": self.source,
            "web_url": self.web_url,
            "before_sha": "0" * 40,
            "tag": False,
            "yaml_errors": None,
            "user": {"id": 1, "username": "cd-bot", "name": "CD bot"},
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "started_at": None,
            "finished_at": None,
            "duration": None,
            "queued_duration": None,
            "coverage": None,
            "detailed_status": {"icon": f"status_{self.status}", "text": self.status,
                                "label": self.status, "group": self.status},
        }


@dataclass
class _Project:
    id: int
    path: str
    trigger_token: str | None
    refs: set[str]
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[int, dict[str, Any]] = field(default_factory=dict)


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


class _GitLabError(Exception):
    def __init__(self, status: int, message: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GitLabDouble:
    """The double: start it on a free 127.0.0.1 port, point the code under test at ``url``."""

    def __init__(self, *, access_token: str | None = None, port: int = 0) -> None:
        self.access_token = access_token
        self._port = port
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._pipelines: list[Pipeline] = []
        self._failures: list[_Failure] = []
        self._projects: dict[int, _Project] = {}
        self._ids = itertools.count(1000)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.id_tokens = IdTokenIssuer()

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> GitLabDouble:
        """Listen on 127.0.0.1 (a free port unless one was given) in a daemon thread."""
        double = self

        class Handler(_Handler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gitlab-double", daemon=True
        )
        self._thread.start()
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
    def add_project(
        self,
        project_id: int,
        path: str,
        *,
        trigger_token: str | None = None,
        refs: tuple[str, ...] = ("main",),
    ) -> None:
        """Make a project known; other projects answer 404 Project Not Found."""
        with self._lock:
            self._projects[project_id] = _Project(project_id, path, trigger_token, set(refs))

    def add_job(self, project_id: int, job_id: int, *, name: str = "deploy",
                status: str = "manual", pipeline_id: int | None = None) -> None:
        """A job that can be played (status manual, or blocked behind an approval)."""
        with self._lock:
            self._projects[project_id].jobs[job_id] = {
                "id": job_id, "name": name, "stage": name, "status": status,
                "pipeline": {"id": pipeline_id, "project_id": project_id},
            }

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
    ) -> None:
        """A deployment (blocked by default, waiting for approval) and its job."""
        self.add_job(project_id, job_id, name=f"deploy-{environment}", pipeline_id=pipeline_id)
        with self._lock:
            self._projects[project_id].deployments[deployment_id] = {
                "id": deployment_id, "iid": deployment_id, "ref": ref, "sha": sha,
                "status": status, "created_at": _now(), "updated_at": _now(),
                "user": {"id": 1, "username": "cd-bot", "name": "CD bot"},
                "environment": {"id": 1, "name": environment, "external_url": None},
                "deployable": {"id": job_id, "name": f"deploy-{environment}", "status": "manual",
                               "ref": ref, "tag": False,
                               "pipeline": {"id": pipeline_id, "sha": sha, "ref": ref}},
                "approvals": list(approvals or []),
                "pending_approval_count": required_approvals - len(approvals or []),
            }

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

    def reset(self) -> None:
        """Forget calls, pipelines and queued failures (projects stay)."""
        with self._lock:
            self._calls.clear()
            self._pipelines.clear()
            self._failures.clear()

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
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def _project(self, ident: str) -> _Project:
        for project in self._projects.values():
            if ident in (str(project.id), project.path):
                return project
        raise _GitLabError(404, "404 Project Not Found")

    def _authenticate(self, headers: dict[str, str]) -> None:
        if self.access_token is not None and headers.get("private-token") != self.access_token:
            raise _GitLabError(401, "401 Unauthorized")

    def _new_pipeline(self, project: _Project, ref: str, source: str,
                      variables: dict[str, str]) -> Pipeline:
        if ref not in project.refs:
            raise _GitLabError(400, {"base": ["Reference not found"]})
        with self._lock:
            pipeline_id = next(self._ids)
            pipeline = Pipeline(
                id=pipeline_id, project_id=project.id, ref=ref, source=source,
                variables=variables, web_url=f"{self.url}/{project.path}/-/pipelines/{pipeline_id}",
                created_at=_now(),
            )
            self._pipelines.append(pipeline)
        return pipeline

    def _find_pipeline(self, project: _Project, pipeline_id: str) -> Pipeline:
        for pipeline in self.pipelines:
            if pipeline.project_id == project.id and str(pipeline.id) == pipeline_id:
                return pipeline
        raise _GitLabError(404, "404 Not found")

    def handle(self, method: str, path: str, body: Any, headers: dict[str, str],
               query: dict[str, str] | None = None) -> tuple[int, Any]:
        """Route one API call (path relative to /api/v4, segments still URL-encoded)."""
        parts = path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "projects":
            raise _GitLabError(404, "404 Not Found")
        project = self._project(unquote(parts[1]))
        rest = parts[2:]
        body = body if isinstance(body, dict) else {}
        query = query or {}
        route = (method, *rest[:1], *(["*"] if len(rest) > 1 else []), *rest[2:])

        if route == ("POST", "trigger", "*") and rest[1] == "pipeline":
            if not body.get("token") or body.get("token") != project.trigger_token:
                raise _GitLabError(404, "404 Not Found")
            variables = {str(k): str(v) for k, v in (body.get("variables") or {}).items()}
            return 201, self._new_pipeline(project, body.get("ref", ""), "trigger",
                                           variables).as_gitlab()
        self._authenticate(headers)
        if route == ("POST", "pipeline"):
            variables = {v["key"]: str(v["value"]) for v in body.get("variables") or []}
            return 201, self._new_pipeline(project, body.get("ref", ""), "api",
                                           variables).as_gitlab()
        if route == ("GET", "pipelines", "*"):
            return 200, self._find_pipeline(project, rest[1]).as_gitlab()
        if route == ("GET", "pipelines", "*", "variables"):
            pipeline = self._find_pipeline(project, rest[1])
            return 200, [{"key": k, "value": v, "variable_type": "env_var"}
                         for k, v in pipeline.variables.items()]
        if route == ("POST", "jobs", "*", "play"):
            job = project.jobs.get(int(rest[1]))
            if job is None:
                raise _GitLabError(404, "404 Not found")
            if job["status"] not in ("manual", "blocked"):
                raise _GitLabError(400, "400 Unplayable Job")
            job["status"] = "pending"
            for deployment in project.deployments.values():
                if deployment["deployable"]["id"] == job["id"]:
                    deployment["status"] = "running"
            return 200, job
        if route == ("POST", "statuses", "*"):
            if body.get("state") not in ("pending", "running", "success", "failed", "canceled"):
                raise _GitLabError(400, "state does not have a valid value")
            return 201, {"id": len(self._calls) + 1, "sha": rest[1], "ref": body.get("ref"),
                         "status": body["state"], "name": body.get("name", "default"),
                         "target_url": body.get("target_url"),
                         "description": body.get("description"), "created_at": _now(),
                         "allow_failure": False, "author": {"id": 1, "username": "cd-bot"}}
        if route == ("POST", "merge_requests", "*", "status_check_responses"):
            for key in ("sha", "external_status_check_id"):
                if key not in body:
                    raise _GitLabError(400, f"{key} is missing")
            return 201, {"id": len(self._calls) + 1,
                         "merge_request": {"iid": int(rest[1]), "project_id": project.id},
                         "external_status_check": {"id": body["external_status_check_id"],
                                                   "name": "docker-cd",
                                                   "project_id": project.id}}
        if route == ("GET", "deployments"):
            found = [d for d in project.deployments.values()
                     if all(str(d.get(k) if k != "environment" else d["environment"]["name"])
                            == query[k] for k in ("status", "environment") if k in query)]
            return 200, sorted(found, key=lambda d: -d["id"])
        if route == ("GET", "deployments", "*"):
            deployment = project.deployments.get(int(rest[1]))
            if deployment is None:
                raise _GitLabError(404, "404 Not found")
            return 200, deployment
        if route == ("POST", "deployments", "*", "approval"):
            deployment = project.deployments.get(int(rest[1]))
            if deployment is None:
                raise _GitLabError(404, "404 Not found")
            if body.get("status") not in ("approved", "rejected"):
                raise _GitLabError(400, "status does not have a valid value")
            approval = {"user": {"id": 2, "username": "cd-bot", "name": "CD bot"},
                        "status": body["status"], "created_at": _now(),
                        "comment": body.get("comment")}
            deployment["approvals"].append(approval)
            deployment["pending_approval_count"] = max(0, deployment["pending_approval_count"] - 1)
            return 201, approval
        raise _GitLabError(404, "404 Not Found")


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
                    "pipelines": [asdict(p) for p in owner.pipelines]}.get(what)
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
            status, answer = e.status, {"message": e.message}
        self.owner._record(Call(method, path, query, body, headers, status))
        self._send(status, answer)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
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


def main() -> None:
    """Serve the double in the foreground (for manual runs and other processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8929)
    parser.add_argument("--access-token", default=None)
    parser.add_argument("--project", action="append", default=[],
                        help="ID:PATH[:TRIGGER_TOKEN], repeatable")
    args = parser.parse_args()
    double = GitLabDouble(access_token=args.access_token, port=args.port)
    for spec in args.project:
        pid, path, *token = spec.split(":", 2)
        double.add_project(int(pid), path, trigger_token=token[0] if token else None)
    double.start()
    print(double.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        double.stop()


if __name__ == "__main__":
    main()
