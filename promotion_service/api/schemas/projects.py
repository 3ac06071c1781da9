"""Projects, environments and their policies, emergency stops, the audit log."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ...domain.actor import ROLES
from ...domain.durations import MAX_SECONDS
from ...domain.policy import MAX_SEVERITY_CHOICES, EnvironmentPolicy, PolicyError
from .base import (
    BIG,
    ENV_NAME,
    ISO_TIME,
    PROJECT,
    REASON,
    TEXT,
    Filters,
    JsonBool,
    Record,
    Strict,
    UtcDateTime,
)

DURATION_DOC = {"description": "seconds, or a duration like 90s, 10m, 2h, 3d", "oneOf": [
    {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS},
    {"type": "string", "pattern": r"^\s*\d{1,6}\s*[smhd]?\s*$"}]}


class ProjectIn(Strict):
    """Create a project (environments come from the policy file)."""

    path = fields.Str(required=True, validate=PROJECT)
    gitlab_id = fields.Int(strict=True, validate=BIG)


class HoldOut(Schema):
    """A hold on automatic promotion."""

    reason = fields.Str(attribute="hold_reason", allow_none=True)
    by = fields.Str(attribute="hold_by", allow_none=True)
    at = UtcDateTime(attribute="hold_at")


class EnvironmentOut(Schema):
    """An environment with its policy and hold."""

    id = fields.Int()
    name = fields.Str()
    position = fields.Int()
    policy = fields.Dict()
    hold = fields.Function(lambda e: HoldOut().dump(e) if e.hold_at is not None else None,
                           allow_none=True, metadata={"type": "object"})


class ProjectOut(Record):
    """A project."""

    path = fields.Str()
    gitlab_id = fields.Int(allow_none=True)


class ProjectDetail(ProjectOut):
    """A project with its environments."""

    environments = fields.List(fields.Nested(EnvironmentOut))


class PolicyIn(Strict):
    """An environment's whole policy (the policy file's keys, every one of them), with why."""

    auto_promote = JsonBool(required=True)
    promote_on_approval = JsonBool(required=True)
    required_approvals = fields.Int(required=True, strict=True,
                                    validate=validate.Range(min=0, max=50))
    approver_roles = fields.List(fields.Str(validate=validate.OneOf(
        [r for r in ROLES if r != "ci"])), required=True, validate=validate.Length(min=1))
    four_eyes = JsonBool(required=True)
    approval_ttl = fields.Raw(required=True, allow_none=True, metadata=DURATION_DOC)
    min_soak = fields.Raw(required=True, allow_none=True, metadata=DURATION_DOC)
    max_severity = fields.Str(required=True, allow_none=True,
                              validate=validate.OneOf(MAX_SEVERITY_CHOICES))
    freeze_windows = fields.List(fields.Nested(lambda: FreezeWindowIn()), required=True)
    reason = fields.Str(required=True, validate=REASON, metadata={
        "description": "why the policy changes (kept in the audit log)"})
    loosen = JsonBool(load_default=False, metadata={
        "description": "true to loosen the policy on purpose (fewer approvals, no four-eyes, "
                       "a higher scan limit, ...); without it such a change is a 409"})

    @validates_schema
    def _domain_rules(self, data: dict[str, Any], **_: Any) -> None:
        policy = {k: v for k, v in data.items() if k not in ("reason", "loosen")}
        try:
            EnvironmentPolicy.from_dict(policy, "policy")
        except PolicyError as exc:
            raise ValidationError(str(exc)) from exc


class FreezeWindowIn(Strict):
    """No promotion between start and end."""

    start = fields.Str(required=True, validate=ISO_TIME, metadata={"format": "date-time"})
    end = fields.Str(required=True, validate=ISO_TIME,
                     metadata={"format": "date-time", "description": "after start"})
    reason = fields.Str(validate=TEXT)


class StopIn(Strict):
    """Stop promotion into environments, across all projects."""

    environments = fields.List(fields.Str(validate=ENV_NAME), required=True,
                               validate=validate.Length(1, 20))
    reason = fields.Str(required=True, validate=REASON)


class HoldIn(Strict):
    """Why hold the environment (automatic promotion stops until the hold is lifted)."""

    reason = fields.Str(required=True, validate=REASON)


class StopOut(Record):
    """An emergency stop."""

    environment = fields.Str()
    reason = fields.Str()
    actor = fields.Str()
    lifted_at = UtcDateTime(allow_none=True)
    lifted_by = fields.Str(allow_none=True)


class AuditFilters(Filters):
    """Filters for the audit log."""

    subject_type = fields.Str(validate=validate.Length(max=32))
    subject_id = fields.Str(validate=validate.Length(max=64))
    action = fields.Str(validate=validate.Length(max=64))
    actor = fields.Str(validate=validate.Length(max=255))


class AuditOut(Schema):
    """One audit entry."""

    id = fields.Int()
    at = fields.Str()
    actor = fields.Str()
    role = fields.Str()
    action = fields.Str()
    subject_type = fields.Str()
    subject_id = fields.Str(allow_none=True)
    before = fields.Raw(allow_none=True)
    after = fields.Raw(allow_none=True)
    request_id = fields.Str(allow_none=True)
    source_ip = fields.Str(allow_none=True)
    prev_hash = fields.Str()
    hash = fields.Str()
