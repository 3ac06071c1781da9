"""GitLab webhook and external-status-check payloads read into plain data, and what they mean.

Pure: no Flask, no SQL, no HTTP. The hooks blueprint verifies and parses with this module,
then applies the result to the service's state.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DeploymentEvent",
    "DeploymentOutcome",
    "EventError",
    "JobEvent",
    "MergeRequestEvent",
    "PipelineEvent",
    "PipelineOutcome",
    "delivery_keys",
    "deployment_outcome",
    "link_signature",
    "parse_event",
    "parse_merge_request",
    "pipeline_outcome",
    "signature_matches",
    "token_matches",
]

PROMOTION_VARIABLE = "CD_PROMOTION_ID"
ENVIRONMENT_VARIABLE = "CD_TARGET_ENVIRONMENT"
IMAGE_VARIABLE = "CD_IMAGE"
_SHA = re.compile(r"[0-9a-f]{40}")


class EventError(ValueError):
    """A payload GitLab would not send: a field is missing or has the wrong type."""


def token_matches(expected: str | None, given: str | None) -> bool:
    """Compare the X-Gitlab-Token header in constant time; no configured secret never matches."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def signature_matches(secret: str | None, body: bytes, signature: str | None) -> bool:
    """Check X-Gitlab-Signature: lower-case hex HMAC-SHA256 of the raw body, constant time."""
    if not secret or not signature:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def link_signature(secret: str, gitlab_project_id: int, sha: str) -> str:
    """The key of a commit-status link: whoever sees the status in GitLab may open the page.

    An HMAC of the project and commit under a key derived from the webhook secret (so the
    secret itself never signs anything but what GitLab sends).
    """
    key = hmac.new(secret.encode(), b"docker-cd commit status link", hashlib.sha256).digest()
    return hmac.new(key, f"{gitlab_project_id}/{sha}".encode(), hashlib.sha256).hexdigest()[:32]


def delivery_keys(headers: Mapping[str, str], event_name: str, payload: Any) -> tuple[str, ...]:
    """What identifies one event delivery, so a redelivered or replayed one is seen again.

    GitLab keeps ``Idempotency-Key`` across redeliveries of an event (17.x); a "Resend
    request" on older servers carries neither that nor the first delivery's
    ``X-Gitlab-Event-UUID``, so the delivery's content is a key too: the event name and the
    payload in a canonical JSON form (key order and spacing do not matter). A delivery
    matching any key seen before is the same event.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{event_name}\n{canonical}".encode()).hexdigest()
    key = (headers.get("Idempotency-Key") or "").strip()[:200]
    return (f"idem:{key}", f"content:{digest}") if key else (f"content:{digest}",)


class PipelineOutcome(enum.Enum):
    """What a triggered pipeline's status means for its promotion."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WAITING = "waiting"  # stopped at a blocking manual job (e.g. a gated production deploy)


class DeploymentOutcome(enum.Enum):
    """What a GitLab deployment's status means for the image in that environment."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"  # waits for deployment approvals


_PIPELINE_OUTCOMES = {
    "created": None,
    "waiting_for_resource": None,
    "preparing": None,
    "pending": None,
    "scheduled": None,
    "running": PipelineOutcome.RUNNING,
    "manual": PipelineOutcome.WAITING,
    "success": PipelineOutcome.SUCCEEDED,
    "failed": PipelineOutcome.FAILED,
    "canceled": PipelineOutcome.FAILED,
    "canceling": PipelineOutcome.FAILED,
    "skipped": PipelineOutcome.FAILED,
}

_DEPLOYMENT_OUTCOMES = {
    "created": None,
    "running": DeploymentOutcome.STARTED,
    "success": DeploymentOutcome.SUCCEEDED,
    "failed": DeploymentOutcome.FAILED,
    "canceled": DeploymentOutcome.FAILED,
    "blocked": DeploymentOutcome.BLOCKED,
}


def pipeline_outcome(status: str) -> PipelineOutcome | None:
    """Map GitLab's pipeline status; None when it tells the promotion nothing new."""
    return _PIPELINE_OUTCOMES.get(status)


def deployment_outcome(status: str) -> DeploymentOutcome | None:
    """Map GitLab's deployment status; None when it tells nothing new."""
    return _DEPLOYMENT_OUTCOMES.get(status)


@dataclass(frozen=True)
class PipelineEvent:
    """A ``Pipeline Hook``: a pipeline changed status."""

    project_id: int
    project_path: str
    pipeline_id: int
    status: str
    ref: str
    sha: str
    source: str
    url: str
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def promotion_id(self) -> int | None:
        """The promotion the service triggered this pipeline for, if it did."""
        value = self.variables.get(PROMOTION_VARIABLE, "")
        return int(value) if value.strip().isdigit() else None

    @property
    def outcome(self) -> PipelineOutcome | None:
        return pipeline_outcome(self.status)


@dataclass(frozen=True)
class JobEvent:
    """A ``Job Hook``: a job changed status."""

    project_id: int
    job_id: int
    name: str
    status: str
    pipeline_id: int
    sha: str
    ref: str
    environment: str | None
    environment_action: str | None
    failure_reason: str | None


@dataclass(frozen=True)
class DeploymentEvent:
    """A ``Deployment Hook``: a deployment started, succeeded, failed or was canceled."""

    project_id: int
    project_path: str
    deployment_id: int
    status: str
    environment: str
    job_id: int | None
    job_url: str | None
    sha: str | None
    username: str | None
    status_changed_at: str | None

    @property
    def outcome(self) -> DeploymentOutcome | None:
        return deployment_outcome(self.status)


@dataclass(frozen=True)
class MergeRequestEvent:
    """A merge request as an external status check (or MR hook) sends it."""

    project_id: int
    project_path: str
    mr_iid: int
    sha: str
    source_branch: str
    target_branch: str
    state: str
    url: str
    check_id: int | None  # external_approval_rule.id: the status check to answer


Event = PipelineEvent | JobEvent | DeploymentEvent | MergeRequestEvent


def _get(data: Mapping[str, Any], path: str, kind: type, default: Any = ...) -> Any:
    """Read a dotted field, checking its type; missing with no default is an EventError."""
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            break
    if value is None:
        if default is ...:
            raise EventError(f"field {path!r} is missing")
        return default
    if kind is int and isinstance(value, str) and value.isdigit():
        value = int(value)
    if kind is str and isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EventError(f"field {path!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _variables(items: Any) -> dict[str, str]:
    if not isinstance(items, list):
        return {}
    return {
        str(v["key"]): str(v.get("value", ""))
        for v in items
        if isinstance(v, Mapping) and isinstance(v.get("key"), str)
    }


def _sha_from_url(url: str | None) -> str | None:
    match = _SHA.search(url or "")
    return match.group(0) if match else None


def parse_pipeline(payload: Mapping[str, Any]) -> PipelineEvent:
    """Read a Pipeline Hook payload."""
    return PipelineEvent(
        project_id=_get(payload, "project.id", int),
        project_path=_get(payload, "project.path_with_namespace", str, ""),
        pipeline_id=_get(payload, "object_attributes.id", int),
        status=_get(payload, "object_attributes.status", str),
        ref=_get(payload, "object_attributes.ref", str, ""),
        sha=_get(payload, "object_attributes.sha", str, ""),
        source=_get(payload, "object_attributes.source", str, ""),
        url=_get(payload, "object_attributes.url", str, ""),
        variables=_variables(_get(payload, "object_attributes.variables", list, [])),
    )


def parse_job(payload: Mapping[str, Any]) -> JobEvent:
    """Read a Job Hook payload (``commit.id`` there is the pipeline id, not a SHA)."""
    environment = payload.get("environment")
    environment = environment if isinstance(environment, Mapping) else {}
    return JobEvent(
        project_id=_get(payload, "project_id", int),
        job_id=_get(payload, "build_id", int),
        name=_get(payload, "build_name", str, ""),
        status=_get(payload, "build_status", str),
        pipeline_id=_get(payload, "pipeline_id", int),
        sha=_get(payload, "sha", str, ""),
        ref=_get(payload, "ref", str, ""),
        environment=environment.get("name"),
        environment_action=environment.get("action"),
        failure_reason=payload.get("build_failure_reason"),
    )


def parse_deployment(payload: Mapping[str, Any]) -> DeploymentEvent:
    """Read a Deployment Hook payload (no full SHA field: it is taken from ``commit_url``)."""
    return DeploymentEvent(
        project_id=_get(payload, "project.id", int),
        project_path=_get(payload, "project.path_with_namespace", str, ""),
        deployment_id=_get(payload, "deployment_id", int),
        status=_get(payload, "status", str),
        environment=_get(payload, "environment", str),
        job_id=_get(payload, "deployable_id", int, None),
        job_url=_get(payload, "deployable_url", str, None),
        sha=_sha_from_url(_get(payload, "commit_url", str, None)),
        username=_get(payload, "user.username", str, None),
        status_changed_at=_get(payload, "status_changed_at", str, None),
    )


def parse_merge_request(payload: Mapping[str, Any]) -> MergeRequestEvent:
    """Read a merge request payload as an external status check sends it."""
    sha = _get(payload, "object_attributes.last_commit.id", str)
    if not _SHA.fullmatch(sha):
        raise EventError("field 'object_attributes.last_commit.id' must be a 40-hex commit SHA")
    return MergeRequestEvent(
        project_id=_get(payload, "project.id", int),
        project_path=_get(payload, "project.path_with_namespace", str, ""),
        mr_iid=_get(payload, "object_attributes.iid", int),
        sha=sha,
        source_branch=_get(payload, "object_attributes.source_branch", str, ""),
        target_branch=_get(payload, "object_attributes.target_branch", str, ""),
        state=_get(payload, "object_attributes.state", str, ""),
        url=_get(payload, "object_attributes.url", str, ""),
        check_id=_get(payload, "external_approval_rule.id", int, None),
    )


_PARSERS = {
    ("Pipeline Hook", "pipeline"): parse_pipeline,
    ("Job Hook", "build"): parse_job,
    ("Deployment Hook", "deployment"): parse_deployment,
    ("Merge Request Hook", "merge_request"): parse_merge_request,
}


def parse_event(event_name: str | None, payload: Any) -> Event | None:
    """Parse a webhook delivery; None for an event kind the service does not use."""
    if not isinstance(payload, Mapping):
        raise EventError("the body must be a JSON object")
    kind = payload.get("object_kind")
    for (name, object_kind), parser in _PARSERS.items():
        if event_name == name or (event_name is None and kind == object_kind):
            if kind is not None and kind != object_kind:
                raise EventError(f"X-Gitlab-Event {event_name!r} with object_kind {kind!r}")
            return parser(payload)
    return None
