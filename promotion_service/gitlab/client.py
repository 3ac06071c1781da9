"""The one wrapper around python-gitlab: every call the service makes to GitLab.

Every failure is raised as a GitLabError (gitlab/errors.py), transient or terminal. No call
retries by itself (python-gitlab's own retries are switched off): the dispatcher owns
retries, so a retry survives a restart and never blocks a request.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gitlab
import requests

from ..config import ConfigError
from .errors import TerminalGitLabError, TransientGitLabError, error_from_response, message_text

__all__ = [
    "GATE_STATUS_NAME",
    "Deployment",
    "DeploymentApproval",
    "GitLabClient",
    "Pipeline",
    "client_from_config",
    "deployment_from_attrs",
]

GATE_STATUS_NAME = "docker-cd/gate"
USER_AGENT = "docker-cd-promotion-service"
_DESCRIPTION_LIMIT = 255  # GitLab truncates longer commit status descriptions


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
    """A GitLab deployment, as much as the service needs of it.

    The list endpoint returns GitLab's plain deployment entity: ``approvals`` is empty and
    ``pending_approval_count`` None there; only the single GET carries them.
    """

    id: int
    status: str
    environment: str
    sha: str | None
    ref: str | None
    job_id: int | None
    pipeline_id: int | None
    approvals: tuple[DeploymentApproval, ...] = field(default_factory=tuple)
    pending_approval_count: int | None = None
    job_status: str | None = None
    user: str | None = None  # who ran the pipeline: GitLab refuses their approval

    @property
    def waits_for_approval(self) -> bool:
        """GitLab holds the job until more approvals are given (its job cannot be played)."""
        return self.status == "blocked" and (self.pending_approval_count or 0) > 0

    @property
    def playable(self) -> bool:
        """GitLab holds the job, no approval is pending, and nobody played it yet."""
        return (self.status == "blocked" and self.pending_approval_count == 0
                and self.job_status == "manual" and self.job_id is not None)


class _LastResponse(threading.local):
    """Headers of the last response on this thread (python-gitlab's errors drop them)."""

    headers: Mapping[str, str] = {}


class GitLabClient:
    """GitLab as the service uses it: a handful of calls, each returning plain data."""

    def __init__(self, url: str, token: str | None = None, *, approver_token: str | None = None,
                 timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._last = _LastResponse()
        self._gl = self._connect(token, timeout)
        # GitLab refuses an approval from the user who ran the pipeline, and the service runs
        # them: approvals go out as another user, the approver.
        self._approver = self._connect(approver_token, timeout) if approver_token else None
        self.has_token = bool(token)

    def _connect(self, token: str | None, timeout: float) -> gitlab.Gitlab:
        session = requests.Session()
        session.hooks["response"].append(self._remember)
        return gitlab.Gitlab(self.url, private_token=token or None, timeout=timeout,
                             user_agent=USER_AGENT, session=session,
                             retry_transient_errors=False, keep_base_url=True)

    @property
    def can_approve(self) -> bool:
        """An approver token is configured (PROMOTION_GITLAB_APPROVER_TOKEN)."""
        return self._approver is not None

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
                f"unexpected answer from GitLab: {message_text(e.error_message)}",
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
        """Start a manual job (an approved deploy job waits for this: GitLab never starts it).

        GitLab answers ``400 Unplayable Job`` while the job's deployment waits for approval,
        and retries (runs again) a manual job that already finished: play each job once.
        """
        operation = f"play job {job_id} in project {project}"
        self._require_token(operation)
        return self._call(
            operation, self._gl.http_post, f"/projects/{_encode(project)}/jobs/{int(job_id)}/play"
        )

    def job_status(self, project: int | str, job_id: int) -> str:
        """A job's status (``manual`` while it waits to be played)."""
        operation = f"read job {job_id} in project {project}"
        self._require_token(operation)
        attrs = self._call(operation, self._gl.http_get,
                           f"/projects/{_encode(project)}/jobs/{int(job_id)}")
        return str(attrs.get("status") or "")

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
        """Mirror an approval (or rejection) given in the service onto a blocked deployment.

        Sent as the approver (PROMOTION_GITLAB_APPROVER_TOKEN), never as the user who runs the
        service's pipelines: GitLab refuses that user's approval.
        """
        if status not in ("approved", "rejected"):
            raise ValueError(f"status must be approved or rejected, not {status!r}")
        operation = f"{status[:-1]} deployment {deployment_id} in project {project}"
        if self._approver is None:
            raise TerminalGitLabError(
                "no approver token configured; set PROMOTION_GITLAB_APPROVER_TOKEN to the token "
                "of a user the environment's approval rules name who does not run the "
                "pipelines", operation=operation)
        data: dict[str, Any] = {"status": status}
        if comment:
            data["comment"] = comment
        if represented_as:
            data["represented_as"] = represented_as
        try:
            return self._call(
                operation,
                self._approver.http_post,
                f"/projects/{_encode(project)}/deployments/{int(deployment_id)}/approval",
                post_data=data,
            )
        except TerminalGitLabError as e:
            if "approve your own deployment" in e.message:
                e.message += (" (the user of PROMOTION_GITLAB_APPROVER_TOKEN ran this pipeline: "
                              "give that variable the token of another user the approval "
                              "rules name, or allow the pipeline triggerer to approve in the "
                              "protected environment settings)")
            raise

    def get_deployment(self, project: int | str, deployment_id: int) -> Deployment:
        """Read one deployment with its approvals (only this GET has them; nor does the
        webhook carry its SHA or job)."""
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
        """Deployments of one environment in one status, newest first, without approvals
        (GitLab's list gives the plain entity: read each with get_deployment)."""
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
        job_status=deployable.get("status"),
        user=(attrs.get("user") or {}).get("username"),
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


def client_from_config(config: Any, *, timeout: float = 10.0) -> GitLabClient:
    """The GitLab client configured by PROMOTION_GITLAB_URL / PROMOTION_GITLAB_TOKEN."""
    url = config.get("GITLAB_URL")
    if not url:
        raise ConfigError("PROMOTION_GITLAB_URL is not set; set it to your GitLab's base URL, "
                         "e.g. https://gitlab.example.com")
    return GitLabClient(url, config.get("GITLAB_TOKEN") or None,
                        approver_token=config.get("GITLAB_APPROVER_TOKEN") or None,
                        timeout=timeout)
