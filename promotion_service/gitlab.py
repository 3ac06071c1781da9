"""The one wrapper around python-gitlab: every call the service makes to GitLab.

Errors are classified once, here, so callers only decide *when* to retry:

    GitLabError                  a call to GitLab failed
    +-- TransientGitLabError     may succeed later: 5xx, 429 (with Retry-After), 408,
    |                            409 "Resource lock", timeouts, connection refused/reset
    +-- TerminalGitLabError      will not succeed by retrying: other 4xx (bad token,
                                 unknown project or ref, variables not allowed, ...)

No call retries by itself (python-gitlab's own retries are switched off): the
dispatcher owns retries, so a retry survives a restart and never blocks a request.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gitlab
import requests

__all__ = [
    "GATE_STATUS_NAME",
    "Deployment",
    "DeploymentApproval",
    "GitLabClient",
    "GitLabError",
    "Pipeline",
    "TerminalGitLabError",
    "TransientGitLabError",
    "error_from_response",
]

GATE_STATUS_NAME = "docker-cd/gate"
USER_AGENT = "docker-cd-promotion-service"
_DESCRIPTION_LIMIT = 255  # GitLab truncates longer commit status descriptions


class GitLabError(Exception):
    """A call to GitLab failed; ``transient`` says whether trying again may help."""

    transient = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        operation: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.operation = operation

    def __str__(self) -> str:
        where = f"{self.operation}: " if self.operation else ""
        code = f"HTTP {self.status}: " if self.status else ""
        return f"{where}{code}{self.message}"


class TransientGitLabError(GitLabError):
    """GitLab may accept the same call later (server error, rate limit, network)."""

    transient = True


class TerminalGitLabError(GitLabError):
    """GitLab refused the call for good: retrying the same request cannot succeed."""


@dataclass(frozen=True)
class Pipeline:
    """A pipeline GitLab created for us."""

    id: int
    web_url: str
    status: str
    project_id: int | None = None
    ref: str | None = None
    sha: str | None = None


@dataclass(frozen=True)
class DeploymentApproval:
    """One approval or rejection given in GitLab for a blocked deployment."""

    user_id: int | None
    username: str
    name: str
    status: str
    comment: str | None
    created_at: str | None


@dataclass(frozen=True)
class Deployment:
    """A GitLab deployment, as much as the service needs of it."""

    id: int
    status: str
    environment: str
    sha: str | None
    ref: str | None
    job_id: int | None
    pipeline_id: int | None
    approvals: tuple[DeploymentApproval, ...] = field(default_factory=tuple)
    pending_approval_count: int | None = None


def _message_text(message: Any) -> str:
    """Flatten GitLab's error body (str, dict of field -> [errors], list) into one line."""
    if message is None:
        return ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if isinstance(message, str):
        return message.strip()[:500]
    if isinstance(message, Mapping):
        parts = []
        for key, value in message.items():
            text = _message_text(value)
            parts.append(f"{key}: {text}" if key not in ("base", "error") else text)
        return "; ".join(parts)
    if isinstance(message, list | tuple):
        return ", ".join(_message_text(m) for m in message)
    return str(message)


def _retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds GitLab asks us to wait: Retry-After (seconds or HTTP date), else RateLimit-Reset."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        value = value.strip()
        if value.isdigit():
            return float(value)
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    reset = headers.get("RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - now)
    return None


def error_from_response(
    status: int, message: Any, headers: Mapping[str, str] | None = None, operation: str = ""
) -> GitLabError:
    """Classify one non-2xx GitLab answer as transient or terminal."""
    headers = headers or {}
    text = _message_text(message) or f"HTTP {status}"
    if status == 429:
        return TransientGitLabError(
            text, status=status, retry_after=_retry_after(headers), operation=operation
        )
    if status >= 500 or status == 408 or (status == 409 and "resource lock" in text.lower()):
        return TransientGitLabError(text, status=status, operation=operation)
    return TerminalGitLabError(text, status=status, operation=operation)


class _LastResponse(threading.local):
    """Headers of the last response on this thread (python-gitlab's errors drop them)."""

    headers: Mapping[str, str] = {}


class GitLabClient:
    """GitLab as the service uses it: a handful of calls, each returning plain data."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._last = _LastResponse()
        session = requests.Session()
        session.hooks["response"].append(self._remember)
        self._gl = gitlab.Gitlab(
            self.url,
            private_token=token or None,
            timeout=timeout,
            user_agent=USER_AGENT,
            session=session,
            retry_transient_errors=False,
            keep_base_url=True,
        )
        self.has_token = bool(token)

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.headers = response.headers

    def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one python-gitlab call, translating every failure into GitLabError once."""
        self._last.headers = {}
        try:
            return fn(*args, obey_rate_limit=False, **kwargs)
        except gitlab.exceptions.GitlabHttpError as e:
            raise error_from_response(
                e.response_code or 0, e.error_message, self._last.headers, operation
            ) from e
        except gitlab.exceptions.GitlabError as e:
            # python-gitlab wraps HTTP errors of most calls in its own subclasses.
            if e.response_code:
                raise error_from_response(
                    e.response_code, e.error_message, self._last.headers, operation
                ) from e
            raise TransientGitLabError(
                f"unexpected answer from GitLab: {_message_text(e.error_message)}",
                operation=operation,
            ) from e
        except requests.Timeout as e:
            raise TransientGitLabError(
                f"GitLab at {self.url} did not answer in time", operation=operation
            ) from e
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as e:
            raise TransientGitLabError(
                f"cannot reach GitLab at {self.url}: {_connection_reason(e)}",
                operation=operation,
            ) from e

    def _project(self, project: int | str) -> Any:
        return self._gl.projects.get(project, lazy=True)

    def _require_token(self, operation: str) -> None:
        if not self.has_token:
            raise TerminalGitLabError(
                "no GitLab access token configured; set PROMOTION_GITLAB_TOKEN to a project "
                "access token with the api scope",
                operation=operation,
            )

    def trigger_pipeline(
        self,
        project: int | str,
        ref: str,
        variables: Mapping[str, str],
        *,
        trigger_token: str | None = None,
    ) -> Pipeline:
        """Start a pipeline on ``ref``: with a trigger token if given, else the pipelines API."""
        operation = f"trigger a pipeline in project {project} on {ref}"
        variables = {k: str(v) for k, v in variables.items()}
        if trigger_token:
            attrs = self._call(
                operation,
                self._gl.http_post,
                f"/projects/{_encode(project)}/trigger/pipeline",
                post_data={"ref": ref, "token": trigger_token, "variables": variables},
            )
        else:
            self._require_token(operation)
            created = self._call(
                operation,
                self._project(project).pipelines.create,
                {"ref": ref, "variables": [{"key": k, "value": v} for k, v in variables.items()]},
            )
            attrs = created.attributes
        return _pipeline(attrs)

    def play_job(self, project: int | str, job_id: int) -> dict[str, Any]:
        """Start a manual (or approved, waiting) job; GitLab never starts it by itself."""
        operation = f"play job {job_id} in project {project}"
        self._require_token(operation)
        return self._call(
            operation, self._gl.http_post, f"/projects/{_encode(project)}/jobs/{int(job_id)}/play"
        )

    def set_commit_status(
        self,
        project: int | str,
        sha: str,
        state: str,
        *,
        ref: str | None = None,
        description: str = "",
        target_url: str | None = None,
        name: str = GATE_STATUS_NAME,
    ) -> dict[str, Any]:
        """Post the gate's answer as a commit status, for tiers without external status checks."""
        operation = f"set commit status {name}={state} on {sha[:12]} in project {project}"
        self._require_token(operation)
        data: dict[str, Any] = {"state": state, "name": name}
        if ref:
            data["ref"] = ref
        if description:
            data["description"] = description[:_DESCRIPTION_LIMIT]
        if target_url:
            data["target_url"] = target_url
        return self._call(
            operation, self._gl.http_post, f"/projects/{_encode(project)}/statuses/{sha}",
            post_data=data,
        )

    def answer_status_check(
        self, project: int | str, mr_iid: int, *, sha: str, check_id: int, status: str
    ) -> dict[str, Any]:
        """Tell GitLab an external status check passed, failed or is pending for the MR head."""
        if status not in ("passed", "failed", "pending"):
            raise ValueError(f"status must be passed, failed or pending, not {status!r}")
        operation = f"answer status check {check_id} on !{mr_iid} in project {project}"
        self._require_token(operation)
        return self._call(
            operation,
            self._gl.http_post,
            f"/projects/{_encode(project)}/merge_requests/{int(mr_iid)}/status_check_responses",
            post_data={"sha": sha, "external_status_check_id": int(check_id), "status": status},
        )

    def approve_deployment(
        self,
        project: int | str,
        deployment_id: int,
        *,
        status: str = "approved",
        comment: str | None = None,
        represented_as: str | None = None,
    ) -> dict[str, Any]:
        """Mirror an approval (or rejection) given in the service onto a blocked deployment."""
        if status not in ("approved", "rejected"):
            raise ValueError(f"status must be approved or rejected, not {status!r}")
        operation = f"{status[:-1]} deployment {deployment_id} in project {project}"
        self._require_token(operation)
        data: dict[str, Any] = {"status": status}
        if comment:
            data["comment"] = comment
        if represented_as:
            data["represented_as"] = represented_as
        return self._call(
            operation,
            self._gl.http_post,
            f"/projects/{_encode(project)}/deployments/{int(deployment_id)}/approval",
            post_data=data,
        )

    def get_deployment(self, project: int | str, deployment_id: int) -> Deployment:
        """Read one deployment (its SHA, job and approvals: the webhook carries none of these)."""
        operation = f"read deployment {deployment_id} in project {project}"
        self._require_token(operation)
        attrs = self._call(
            operation,
            self._gl.http_get,
            f"/projects/{_encode(project)}/deployments/{int(deployment_id)}",
        )
        return deployment_from_attrs(attrs)


    def list_deployments(
        self, project: int | str, *, environment: str, status: str = "blocked"
    ) -> list[Deployment]:
        """Deployments of one environment in one status (e.g. blocked, waiting for approval)."""
        operation = f"list {status} deployments of {environment} in project {project}"
        self._require_token(operation)
        items = self._call(
            operation,
            self._gl.http_get,
            f"/projects/{_encode(project)}/deployments",
            query_data={"environment": environment, "status": status, "order_by": "id",
                        "sort": "desc", "per_page": 20},
        )
        return [deployment_from_attrs(item) for item in items or ()]


def deployment_from_attrs(attrs: Mapping[str, Any]) -> Deployment:
    """Build a Deployment from GitLab's deployment object."""
    deployable = attrs.get("deployable") or {}
    pipeline = deployable.get("pipeline") or {}
    environment = attrs.get("environment") or {}
    approvals = tuple(
        DeploymentApproval(
            user_id=(a.get("user") or {}).get("id"),
            username=(a.get("user") or {}).get("username") or "",
            name=(a.get("user") or {}).get("name") or "",
            status=a.get("status") or "",
            comment=a.get("comment"),
            created_at=a.get("created_at"),
        )
        for a in attrs.get("approvals") or ()
    )
    return Deployment(
        id=int(attrs["id"]),
        status=str(attrs.get("status") or ""),
        environment=str(environment.get("name") or ""),
        sha=attrs.get("sha"),
        ref=attrs.get("ref"),
        job_id=deployable.get("id"),
        pipeline_id=pipeline.get("id"),
        approvals=approvals,
        pending_approval_count=attrs.get("pending_approval_count"),
    )


def _pipeline(attrs: Mapping[str, Any]) -> Pipeline:
    try:
        return Pipeline(
            id=int(attrs["id"]),
            web_url=str(attrs.get("web_url") or ""),
            status=str(attrs.get("status") or ""),
            project_id=attrs.get("project_id"),
            ref=attrs.get("ref"),
            sha=attrs.get("sha"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise TransientGitLabError(f"GitLab answered without a pipeline id: {attrs!r:.200}") from e


def _encode(project: int | str) -> str:
    """A project id, or its full path URL-encoded (``group/app`` -> ``group%2Fapp``)."""
    return requests.utils.quote(str(project), safe="")


def _connection_reason(error: Exception) -> str:
    text = str(error).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("reset", "connection reset"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("timed out", "connection timed out"),
    ):
        if needle in text:
            return reason
    return type(error).__name__
