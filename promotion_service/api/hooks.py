"""GitLab talks to the service here: project webhooks and external status checks.

``POST /hooks/gitlab``               pipeline, job, deployment (and MR) events; X-Gitlab-Token
``POST /hooks/gitlab/status-check``  external status checks; X-Gitlab-Signature (HMAC-SHA256)
(what the gate answered is read at /api/v1/merge-request-checks: api/merge_request_checks.py)

GitLab's payloads (a pipeline with many jobs, an MR with a long description) are larger than
the API's body limit: these routes take what GitLab sends, up to its own 25 MiB limit
(REQUEST_BODY_SIZE_LIMIT of its WebHookService and ExternalStatusChecks::DispatchService), or
PROMOTION_GITLAB_HOOK_MAX_BYTES. A wrong or missing secret is a 401 and nothing is recorded.
A delivery seen before (same Idempotency-Key, or same event and content) changes nothing.
Unknown projects, environments and event kinds are acknowledged (200) and ignored.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from ..db import get_session
from ..domain.gitlab_events import (
    DeploymentEvent,
    EventError,
    delivery_keys,
    parse_event,
    parse_merge_request,
    signature_matches,
    token_matches,
)
from ..errors import Invalid, Unauthorized
from ..gitlab import events, merge_request_gate

log = logging.getLogger(__name__)

hooks = Blueprint("gitlab_hooks", __name__, url_prefix="/hooks/gitlab")


HOOK_MAX_BYTES = 25 * 1024 * 1024  # GitLab sends no more (25.megabytes)


@hooks.before_request
def _allow_gitlab_sized_bodies() -> None:
    request.max_content_length = int(current_app.config.get("GITLAB_HOOK_MAX_BYTES")
                                     or HOOK_MAX_BYTES)


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise Invalid("the body must be JSON (GitLab sends application/json)",
                      errors={"json": {"_schema": ["not valid JSON"]}}) from None


def _source() -> tuple[str | None, str | None]:
    return g.get("request_id"), request.remote_addr


@hooks.post("")
def gitlab_webhook() -> ResponseReturnValue:
    """Receive a project webhook delivery (Pipeline, Job, Deployment, Merge Request Hook)."""
    secret = current_app.config.get("WEBHOOK_SECRET")
    if not secret:
        raise Unauthorized("webhooks are refused: PROMOTION_WEBHOOK_SECRET is not set on the "
                           "service; set it and the same value as the hook's secret token")
    if not token_matches(secret, request.headers.get("X-Gitlab-Token")):
        raise Unauthorized("X-Gitlab-Token is missing or wrong: set the webhook's secret token "
                           "to the service's PROMOTION_WEBHOOK_SECRET")
    raw = request.get_data(cache=True)
    event_name = request.headers.get("X-Gitlab-Event") or ""
    payload = _json_body(raw)
    try:
        event = parse_event(event_name or None, payload)
    except EventError as e:
        raise Invalid(f"{event_name or 'webhook'}: {e}") from None
    if event is None:
        return jsonify(status="ignored", reason=f"event {event_name!r} is not used"), 200

    keys = delivery_keys(request.headers, event_name, payload)
    request_id, source_ip = _source()
    actor = events.gitlab_actor(_username(payload, event), request_id, source_ip)
    outcome = events.receive(get_session(), current_app.config, event, keys=keys,
                             event_name=event_name, actor=actor)
    if outcome is None:
        return jsonify(status="duplicate", reason="this delivery was already processed"), 200
    log.info("GitLab %s: %s", event_name, outcome)
    status = "ignored" if outcome.startswith("ignored") else "processed"
    return jsonify(status=status, outcome=outcome), 200


def _username(payload: dict[str, Any], event: Any) -> str | None:
    if isinstance(event, DeploymentEvent):
        return event.username
    user = payload.get("user") if isinstance(payload, dict) else None
    return user.get("username") if isinstance(user, dict) else None


@hooks.post("/status-check")
def external_status_check() -> ResponseReturnValue:
    """GitLab asks whether an MR may merge; the answer goes back through the API (queued)."""
    secret = (current_app.config.get("GITLAB_STATUS_CHECK_SECRET")
              or current_app.config.get("WEBHOOK_SECRET"))
    raw = request.get_data(cache=True)
    if not secret:
        raise Unauthorized("status checks are refused: PROMOTION_GITLAB_STATUS_CHECK_SECRET is "
                           "not set; set it and the same value as the check's shared secret")
    if not signature_matches(secret, raw, request.headers.get("X-Gitlab-Signature")):
        raise Unauthorized("X-Gitlab-Signature is missing or wrong: set the external status "
                           "check's shared secret to PROMOTION_GITLAB_STATUS_CHECK_SECRET")
    try:
        event = parse_merge_request(_json_body(raw))
    except EventError as e:
        raise Invalid(f"status check: {e}") from None
    if event.check_id is None:
        raise Invalid("status check: field 'external_approval_rule.id' is missing "
                      "(GitLab sends it with every external status check)")
    row = merge_request_gate.check_merge_request(get_session(), event, current_app.config,
                                                 check_id=event.check_id)
    body = merge_request_gate.checks_payload(row)
    log.info("status check %s on %s!%s: %s", event.check_id, event.project_path,
             event.mr_iid, body["status"])
    return jsonify(body), 200
