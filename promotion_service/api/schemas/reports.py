"""What deploy jobs and approvers report: deployments, verifications, approvals."""

from __future__ import annotations

from marshmallow import fields, validate

from ...domain.states import DEPLOYMENT_INITIAL, DeploymentState
from .base import TEXT, URL, ImageEnvRecord, ImageEnvRef, Strict, one_of

TEMPLATE_HASH = validate.Regexp(r"^sha256:[0-9a-f]{64}$", error="expected sha256:<64 hex digits>")


class DeploymentIn(ImageEnvRef):
    """A deploy job's report."""

    state = fields.Str(required=True, validate=one_of(
        DeploymentState, but=set(DeploymentState) - DEPLOYMENT_INITIAL))
    job_url = fields.Str(validate=URL)
    message = fields.Str(validate=TEXT)
    template_hash = fields.Str(validate=TEMPLATE_HASH, metadata={
        "description": "the rendered template's hash; a deploy whose template differs from "
                       "the one the approvals let deploy is refused (409) until approved again"})


class DeploymentPatch(Strict):
    """A deployment moving on."""

    state = fields.Str(required=True, validate=one_of(DeploymentState))
    message = fields.Str(validate=TEXT)


class DeploymentOut(ImageEnvRecord):
    """A deployment."""

    promotion_id = fields.Int()
    state = fields.Str()
    job_url = fields.Str()
    message = fields.Str()
    actor = fields.Str()
    updated_at = fields.DateTime()
    template_hash = fields.Str(allow_none=True)


class VerificationIn(ImageEnvRef):
    """Smoke-check result."""

    passed = fields.Bool(required=True)
    details = fields.Dict()
    job_url = fields.Str(validate=URL)


class VerificationOut(ImageEnvRecord):
    """A verification."""

    passed = fields.Bool()
    details = fields.Dict()
    job_url = fields.Str()


class ApprovalIn(ImageEnvRef):
    """Approve or reject a digest for an environment."""

    decision = fields.Str(load_default="approve", validate=validate.OneOf(("approve", "reject")))
    comment = fields.Str(validate=TEXT)
    expires_in = fields.Int(validate=validate.Range(min=60, max=90 * 86400),
                            metadata={"description": "seconds until the approval lapses"})
    template_hash = fields.Str(validate=TEMPLATE_HASH, metadata={
        "description": "approve only this rendered template (`docker-cd template check` prints "
                       "it); without it, the approval is for the template of the first deploy "
                       "it lets through"})


class ApprovalOut(ImageEnvRecord):
    """An approval or rejection."""

    actor = fields.Str()
    role = fields.Str()
    decision = fields.Str()
    comment = fields.Str()
    expires_at = fields.DateTime()
    withdrawn_at = fields.DateTime()
    withdrawn_by = fields.Str()
    template_hash = fields.Str(allow_none=True)
