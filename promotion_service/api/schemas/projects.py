"""Projects, environments and their policies, emergency stops, the audit log."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ...domain.actor import ROLES
from ...domain.policy import EnvironmentPolicy, PolicyError
from .base import BIG, ENV_NAME, PROJECT, REASON, Filters, Record, Strict


class ProjectIn(Strict):
    """Create a project (environments come from the policy file)."""

    path = fields.Str(required=True, validate=PROJECT)
    gitlab_id = fields.Int(validate=BIG)


class HoldOut(Schema):
    """A hold on automatic promotion."""

    reason = fields.Str(attribute="hold_reason")
    by = fields.Str(attribute="hold_by")
    at = fields.DateTime(attribute="hold_at")


class EnvironmentOut(Schema):
    """An environment with its policy and hold."""

    id = fields.Int()
    name = fields.Str()
    position = fields.Int()
    policy = fields.Dict()
    hold = fields.Function(lambda e: HoldOut().dump(e) if e.hold_at is not None else None)


class ProjectOut(Record):
    """A project."""

    path = fields.Str()
    gitlab_id = fields.Int()


class ProjectDetail(ProjectOut):
    """A project with its environments."""

    environments = fields.List(fields.Nested(EnvironmentOut))


class PolicyIn(Strict):
    """An environment's whole policy (the policy file's keys, every one of them), with why."""

    auto_promote = fields.Bool(required=True)
    promote_on_approval = fields.Bool(required=True)
    required_approvals = fields.Int(required=True, validate=validate.Range(min=0, max=50))
    approver_roles = fields.List(fields.Str(validate=validate.OneOf(
        [r for r in ROLES if r != "ci"])), required=True)
    four_eyes = fields.Bool(required=True)
    approval_ttl = fields.Raw(required=True, allow_none=True)
    min_soak = fields.Raw(required=True, allow_none=True)
    max_severity = fields.Str(required=True, allow_none=True)
    freeze_windows = fields.List(fields.Dict(), required=True)
    reason = fields.Str(required=True, validate=REASON, metadata={
        "description": "why the policy changes (kept in the audit log)"})
    loosen = fields.Bool(load_default=False, metadata={
        "description": "true to loosen the policy on purpose (fewer approvals, no four-eyes, "
                       "a higher scan limit, ...); without it such a change is a 409"})

    @validates_schema
    def _domain_rules(self, data: dict[str, Any], **_: Any) -> None:
        policy = {k: v for k, v in data.items() if k not in ("reason", "loosen")}
        try:
            EnvironmentPolicy.from_dict(policy, "policy")
        except PolicyError as exc:
            raise ValidationError(str(exc)) from exc


class StopIn(Strict):
    """Stop promotion into environments, across all projects."""

    environments = fields.List(fields.Str(validate=ENV_NAME), required=True,
                               validate=validate.Length(1, 20))
    reason = fields.Str(required=True, validate=REASON)


class StopOut(Record):
    """An emergency stop."""

    environment = fields.Str()
    reason = fields.Str()
    actor = fields.Str()
    lifted_at = fields.DateTime()
    lifted_by = fields.Str()


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
    subject_id = fields.Str()
    before = fields.Raw()
    after = fields.Raw()
    request_id = fields.Str()
    source_ip = fields.Str()
    prev_hash = fields.Str()
    hash = fields.Str()
