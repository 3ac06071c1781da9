"""What deploy jobs and approvers report: deployments, verifications, approvals."""

from __future__ import annotations

from marshmallow import fields, validate

from ...domain.states import DEPLOYMENT_INITIAL, DeploymentState
from .base import (
    TEXT,
    URL,
    ImageEnvRecord,
    ImageEnvRef,
    JsonBool,
    Strict,
    UtcDateTime,
    one_of,
)


class DeploymentIn(ImageEnvRef):
    """A deploy job's report."""

    state = fields.Str(required=True, validate=one_of(
        DeploymentState, but=set(DeploymentState) - DEPLOYMENT_INITIAL))
    job_url = fields.Str(validate=URL)
    message = fields.Str(validate=TEXT)


class DeploymentPatch(Strict):
    """A deployment moving on."""

    state = fields.Str(required=True, validate=one_of(DeploymentState))
    message = fields.Str(validate=TEXT)


class DeploymentOut(ImageEnvRecord):
    """A deployment."""

    promotion_id = fields.Int(allow_none=True)
    state = fields.Str()
    job_url = fields.Str(allow_none=True)
    message = fields.Str(allow_none=True)
    actor = fields.Str()
    updated_at = UtcDateTime()


class VerificationIn(ImageEnvRef):
    """Smoke-check result."""

    passed = JsonBool(required=True)
    details = fields.Dict()
    job_url = fields.Str(validate=URL)


class VerificationOut(ImageEnvRecord):
    """A verification."""

    passed = fields.Bool()
    details = fields.Dict()
    job_url = fields.Str(allow_none=True)


class ApprovalIn(ImageEnvRef):
    """Approve or reject a digest for an environment."""

    decision = fields.Str(load_default="approve", validate=validate.OneOf(("approve", "reject")))
    comment = fields.Str(validate=TEXT)
    expires_in = fields.Int(strict=True, validate=validate.Range(min=60, max=90 * 86400),
                            metadata={"description": "seconds until the approval lapses"})


class ApprovalOut(ImageEnvRecord):
    """An approval or rejection."""

    actor = fields.Str()
    role = fields.Str()
    decision = fields.Str()
    comment = fields.Str(allow_none=True)
    expires_at = UtcDateTime(allow_none=True)
    withdrawn_at = UtcDateTime(allow_none=True)
    withdrawn_by = fields.Str(allow_none=True)
