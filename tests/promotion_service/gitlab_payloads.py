"""Webhook and status-check payloads shaped like GitLab's documented ones, with what tests vary."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

SHA = "2695effb5807a22ff3d138d593fd856244e155e7"
PROJECT_ID = 42
PROJECT_PATH = "group/app"

_project = {
    "id": PROJECT_ID,
    "name": "app",
    "description": "",
    "web_url": f"https://gitlab.example.com/{PROJECT_PATH}",
    "avatar_url": None,
    "git_ssh_url": f"git@gitlab.example.com:{PROJECT_PATH}.git",
    "git_http_url": f"https://gitlab.example.com/{PROJECT_PATH}.git",
    "namespace": "group",
    "visibility_level": 0,
    "path_with_namespace": PROJECT_PATH,
    "default_branch": "main",
}
_user = {
    "id": 100,
    "name": "QA Lead",
    "username": "qa-lead",
    "avatar_url": "https://gitlab.example.com/uploads/user/avatar/100/a.png",
    "email": "[REDACTED]",
}


def _project_of(project_id: int, path: str) -> dict[str, Any]:
    return {**_project, "id": project_id, "path_with_namespace": path,
            "web_url": f"https://gitlab.example.com/{path}"}


def pipeline_event(
    pipeline_id: int,
    status: str,
    *,
    variables: dict[str, str] | None = None,
    project_id: int = PROJECT_ID,
    project_path: str = PROJECT_PATH,
    sha: str = SHA,
    source: str = "trigger",
) -> dict[str, Any]:
    """A ``Pipeline Hook`` body."""
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": pipeline_id,
            "iid": pipeline_id - 999,
            "name": None,
            "ref": "main",
            "tag": False,
            "sha": sha,
            "before_sha": "0000000000000000000000000000000000000000",
            "source": source,
            "status": status,
            "detailed_status": status,
            "stages": ["deploy-staging", "verify-staging"],
            "created_at": "2026-11-26 16:00:00 UTC",
            "finished_at": None,
            "duration": None,
            "queued_duration": None,
            "variables": [{"key": k, "value": v} for k, v in (variables or {}).items()],
            "url": f"https://gitlab.example.com/{project_path}/-/pipelines/{pipeline_id}",
        },
        "merge_request": None,
        "user": _user,
        "project": _project_of(project_id, project_path),
        "commit": {
            "id": sha,
            "message": "Add a feature\n",
            "title": "Add a feature",
            "timestamp": "2026-11-26T15:59:00+00:00",
            "url": f"https://gitlab.example.com/{project_path}/-/commit/{sha}",
            "author": {"name": "Dev", "email": "[REDACTED]"},
        },
        "source_pipeline": None,
        "builds": [],
    }


def job_event(
    job_id: int,
    status: str,
    *,
    pipeline_id: int = 1000,
    environment: str | None = "production",
    name: str = "deploy-production",
    project_id: int = PROJECT_ID,
) -> dict[str, Any]:
    """A ``Job Hook`` body (``commit.id`` is the pipeline id there, as in GitLab)."""
    return {
        "object_kind": "build",
        "ref": "main",
        "tag": False,
        "before_sha": "0000000000000000000000000000000000000000",
        "sha": SHA,
        "retries_count": 0,
        "build_id": job_id,
        "build_name": name,
        "build_stage": name,
        "build_status": status,
        "build_created_at": "2026-11-26 16:00:00 UTC",
        "build_started_at": None,
        "build_finished_at": None,
        "build_duration": None,
        "build_queued_duration": None,
        "build_allow_failure": False,
        "build_failure_reason": "unknown_failure" if status == "failed" else None,
        "pipeline_id": pipeline_id,
        "project_id": project_id,
        "project_name": "group / app",
        "user": _user,
        "commit": {"id": pipeline_id, "name": None, "sha": SHA, "message": "Add a feature",
                   "author_name": "Dev", "author_email": "[REDACTED]", "status": status},
        "repository": {"name": "app", "url": "git@gitlab.example.com:group/app.git"},
        "project": _project_of(project_id, PROJECT_PATH),
        "runner": None,
        "environment": (
            {"name": environment, "action": "start", "deployment_tier": environment}
            if environment else None
        ),
        "source_pipeline": None,
    }


def deployment_event(
    deployment_id: int,
    status: str,
    *,
    environment: str = "staging",
    job_id: int = 7,
    project_id: int = PROJECT_ID,
    project_path: str = PROJECT_PATH,
    sha: str = SHA,
) -> dict[str, Any]:
    """A ``Deployment Hook`` body (no full SHA field: it is in ``commit_url``)."""
    return {
        "object_kind": "deployment",
        "status": status,
        "status_changed_at": "2026-11-26 16:10:00 +0000",
        "deployment_id": deployment_id,
        "deployable_id": job_id,
        "deployable_url": f"https://gitlab.example.com/{project_path}/-/jobs/{job_id}",
        "environment": environment,
        "environment_tier": environment,
        "environment_slug": environment,
        "environment_external_url": f"https://{environment}.example.com",
        "project": _project_of(project_id, project_path),
        "short_sha": sha[:8],
        "user": _user,
        "user_url": "https://gitlab.example.com/qa-lead",
        "commit_url": f"https://gitlab.example.com/{project_path}/-/commit/{sha}",
        "commit_title": "Add a feature",
    }


def merge_request_check(
    mr_iid: int = 12,
    *,
    sha: str = SHA,
    check_id: int = 5,
    project_id: int = PROJECT_ID,
    project_path: str = PROJECT_PATH,
) -> dict[str, Any]:
    """What GitLab POSTs to an external status check: the MR event plus the check's rule."""
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": _user,
        "project": _project_of(project_id, project_path),
        "object_attributes": {
            "id": 90 + mr_iid,
            "iid": mr_iid,
            "title": "Add a feature",
            "description": "",
            "state": "opened",
            "action": "update",
            "source_branch": "feature",
            "target_branch": "main",
            "source_project_id": project_id,
            "target_project_id": project_id,
            "head_pipeline_id": 1000,
            "detailed_merge_status": "external_status_checks",
            "url": f"https://gitlab.example.com/{project_path}/-/merge_requests/{mr_iid}",
            "last_commit": {
                "id": sha,
                "message": "Add a feature\n",
                "title": "Add a feature",
                "timestamp": "2026-11-26T15:59:00+00:00",
                "url": f"https://gitlab.example.com/{project_path}/-/commit/{sha}",
                "author": {"name": "Dev", "email": "[REDACTED]"},
            },
        },
        "labels": [],
        "changes": {},
        "repository": {"name": "app", "url": "git@gitlab.example.com:group/app.git"},
        "external_approval_rule": {
            "id": check_id,
            "name": "docker-cd",
            "external_url": "https://cd.example.com/hooks/gitlab/status-check",
        },
    }


EVENT_NAMES = {
    "pipeline": "Pipeline Hook",
    "build": "Job Hook",
    "deployment": "Deployment Hook",
    "merge_request": "Merge Request Hook",
}


def hook_headers(payload: dict[str, Any], token: str | None, *, event_uuid: str | None = None
                 ) -> dict[str, str]:
    """Headers GitLab sends with a webhook delivery."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/18.1.0",
        "X-Gitlab-Event": EVENT_NAMES.get(payload.get("object_kind"), "Push Hook"),
        "X-Gitlab-Event-UUID": event_uuid or str(uuid.uuid4()),
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://gitlab.example.com",
    }
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return headers


def signed(payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """A status-check delivery: the raw body and its X-Gitlab-Signature header."""
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Gitlab-Signature": signature}
