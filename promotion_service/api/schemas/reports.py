"""What deploy jobs and approvers report: deployments, verifications, approvals."""

from __future__ import annotations

from marshmallow import fields, validate

from ...domain.states import DEPLOYMENT_INITIAL, DeploymentState
from .base import RELEASE_ID, TEXT, URL, ImageEnvRecord, ImageEnvRef, Strict, one_of


class DeploymentIn(ImageEnvRef):
    """A deploy job's report."""

    state = fields.Str(required=True, validate=one_of(
        DeploymentState, but=set(DeploymentState) - DEPLOYMENT_INITIAL))
    job_url = fields.Str(validate=URL)
    message = fields.Str(validate=TEXT)
    release_id = fields.Str(validate=RELEASE_ID, metadata={
        "description": "the target's record of this release (docker-cd deploy's CD_RELEASE_ID)"})
    rollback_of = fields.Str(validate=RELEASE_ID, metadata={
        "description": "a rollback: the release it restores"})


class DeploymentPatch(Strict):
    """A deployment moving on."""

    state = fields.Str(required=True, validate=one_of(DeploymentState))
    message = fields.Str(validate=TEXT)


class DeploymentOut(ImageEnvRecord):
    """A deployment."""

    promotion_id = fields.Int()
    state = fields.Str()
    release_id = fields.Str()
    rollback_of = fields.Str()
    job_url = fields.Str()
    message = fields.Str()
    actor = fields.Str()
    updated_at = fields.DateTime()


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


class ApprovalOut(ImageEnvRecord):
    """An approval or rejection."""

    actor = fields.Str()
    role = fields.Str()
    decision = fields.Str()
    comment = fields.Str()
    given_in = fields.Str(metadata={"description": "service, or gitlab (GitLab's UI)"})
    expires_at = fields.DateTime()
    withdrawn_at = fields.DateTime()
    withdrawn_by = fields.Str()
