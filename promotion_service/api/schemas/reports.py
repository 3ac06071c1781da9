"""What deploy jobs and approvers report: deployments, verifications, approvals."""

from __future__ import annotations

from marshmallow import fields, validate

from ...domain.states import DEPLOYMENT_INITIAL, DeploymentState
from .base import (
    RELEASE_ID,
    TEXT,
    URL,
    JsonBool,
    ReleaseEnvRecord,
    ReleaseEnvRef,
    Strict,
    UtcDateTime,
    one_of,
)

TEMPLATE_HASH = validate.Regexp(r"^sha256:[0-9a-f]{64}$", error="expected sha256:<64 hex digits>")


class DeploymentIn(ReleaseEnvRef):
    """A deploy job's report."""

    state = fields.Str(required=True, validate=one_of(
        DeploymentState, but=set(DeploymentState) - DEPLOYMENT_INITIAL))
    job_url = fields.Str(validate=URL)
    message = fields.Str(validate=TEXT)
    record_id = fields.Str(validate=RELEASE_ID, metadata={
        "description": "the target's record of this deploy (what `docker-cd releases` lists)"})
    rollback_of = fields.Str(validate=RELEASE_ID, metadata={
        "description": "a rollback: the record it restores"})
    template_hash = fields.Str(validate=TEMPLATE_HASH, metadata={
        "description": "the rendered template's hash; a deploy whose template differs from "
                       "the one the approvals let deploy is refused (409) until approved again"})


class DeploymentPatch(Strict):
    """A deployment moving on."""

    state = fields.Str(required=True, validate=one_of(DeploymentState))
    message = fields.Str(validate=TEXT)


class DeploymentOut(ReleaseEnvRecord):
    """A deployment."""

    promotion_id = fields.Int(allow_none=True)
    state = fields.Str()
    record_id = fields.Str(allow_none=True)
    rollback_of = fields.Str(allow_none=True)
    job_url = fields.Str(allow_none=True)
    message = fields.Str(allow_none=True)
    actor = fields.Str()
    updated_at = UtcDateTime()
    template_hash = fields.Str(allow_none=True)


class VerificationIn(ReleaseEnvRef):
    """Smoke-check result."""

    passed = JsonBool(required=True)
    details = fields.Dict()
    job_url = fields.Str(validate=URL)


class VerificationOut(ReleaseEnvRecord):
    """A verification."""

    passed = fields.Bool()
    details = fields.Dict()
    job_url = fields.Str(allow_none=True)


class ApprovalIn(ReleaseEnvRef):
    """Approve or reject a release for an environment."""

    decision = fields.Str(load_default="approve", validate=validate.OneOf(("approve", "reject")))
    comment = fields.Str(validate=TEXT)
    expires_in = fields.Int(strict=True, validate=validate.Range(min=60, max=90 * 86400),
                            metadata={"description": "seconds until the approval lapses"})
    template_hash = fields.Str(validate=TEMPLATE_HASH, metadata={
        "description": "approve only this rendered template (`docker-cd template check` prints "
                       "it); without it, the approval is for the template of the first deploy "
                       "it lets through"})


class ApprovalOut(ReleaseEnvRecord):
    """An approval or rejection."""

    actor = fields.Str()
    role = fields.Str()
    decision = fields.Str()
    comment = fields.Str(allow_none=True)
    given_in = fields.Str(metadata={"description": "service, or gitlab (GitLab's UI)"})
    expires_at = UtcDateTime(allow_none=True)
    withdrawn_at = UtcDateTime(allow_none=True)
    withdrawn_by = fields.Str(allow_none=True)
    template_hash = fields.Str(allow_none=True)
