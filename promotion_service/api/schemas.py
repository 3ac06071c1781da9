"""Request and response schemas (marshmallow): unknown fields are refused, digests checked."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..db import get_session
from ..domain.actor import ROLES
from ..domain.policy import SEVERITIES, EnvironmentPolicy, PolicyError
from ..domain.states import DEPLOYMENT_INITIAL, DeploymentState, PromotionState
from ..models import Environment, Image

DIGEST = validate.Regexp(r"^sha256:[0-9a-f]{64}$",
                         error="must be 'sha256:' followed by 64 lower-case hex digits")
REPOSITORY = validate.And(validate.Length(1, 255), validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
    error="must be an image repository like registry.example.com/group/app (no tag, no digest)"))
PROJECT = validate.And(validate.Length(1, 255), validate.Regexp(
    r"^[A-Za-z0-9_.][A-Za-z0-9_./-]*$", error="must be a GitLab project path like group/app"))
ENV_NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_.-]{0,63}$",
                           error="must be an environment name like staging")
SHA = validate.Regexp(r"^[0-9a-f]{7,64}$", error="must be a hex commit SHA")
TEXT = validate.Length(max=4000)
REASON = validate.Length(1, 4000)
SEVERITY = validate.OneOf((*SEVERITIES, "unknown"))
URL = validate.Length(max=2048)
BIG = validate.Range(min=0, max=2**62)


class Strict(Schema):
    """Bodies: an unknown field is an error naming it."""

    class Meta:
        unknown = RAISE


class Filters(Schema):
    """Query strings: unknown parameters are ignored (page/page_size are the paginator's)."""

    class Meta:
        unknown = EXCLUDE


class Record(Schema):
    """What every stored row shows: its id and when it was made."""

    id = fields.Int()
    created_at = fields.DateTime()


class ImageEnvRecord(Record):
    """A row about one image in one environment (deployments, verifications, approvals)."""

    image_id = fields.Int()
    environment_id = fields.Int()


def _one_of(states: Any, but: Any = ()) -> validate.OneOf:
    """The values of a state enum (in its order) as the only choices, so the two never drift."""
    return validate.OneOf([str(s) for s in states if s not in but])


class ImageRef(Strict):
    """Which image (by digest, never by tag)."""

    repository = fields.Str(required=True, validate=REPOSITORY)
    digest = fields.Str(required=True, validate=DIGEST)


class ImageEnvRef(ImageRef):
    """Which image, in which environment."""

    environment = fields.Str(required=True, validate=ENV_NAME)


class ImageIn(ImageRef):
    """Register an image."""

    project = fields.Str(required=True, validate=PROJECT)
    gitlab_project_id = fields.Int(validate=BIG)
    commit_sha = fields.Str(validate=SHA)
    commit_time = fields.AwareDateTime(default_timezone=None)
    ref = fields.Str(validate=validate.Length(max=255))
    tags = fields.List(fields.Str(validate=validate.Length(1, 128)),
                       validate=validate.Length(max=100))
    pipeline_id = fields.Int(validate=BIG)
    pipeline_url = fields.Str(validate=URL)
    triggered_by = fields.Str(validate=validate.Length(1, 255))


class ImageOut(Schema):
    """An image as the API shows it."""

    id = fields.Int()
    project_id = fields.Int()
    repository = fields.Str()
    digest = fields.Str()
    image = fields.Function(lambda i: f"{i.repository}@{i.digest}")
    commit_sha = fields.Str()
    commit_time = fields.DateTime()
    ref = fields.Str()
    tags = fields.List(fields.Str())
    pipeline_id = fields.Int()
    pipeline_url = fields.Str()
    triggered_by = fields.Str()
    registered_by = fields.Str()
    created_at = fields.DateTime()
    revoked = fields.Function(lambda i: i.revoked_at is not None)
    revoked_at = fields.DateTime()
    revoked_by = fields.Str()
    revoked_reason = fields.Str()


class ImageDetail(ImageOut):
    """An image with its state in each environment."""

    project = fields.Str()
    scan = fields.Nested(lambda: ScanOut(), allow_none=True)
    environments = fields.List(fields.Dict())


class ImageFilters(Filters):
    """Filters for listing images."""

    project = fields.Str(validate=PROJECT)
    repository = fields.Str(validate=REPOSITORY)
    digest = fields.Str(validate=DIGEST)
    commit_sha = fields.Str(validate=SHA)
    revoked = fields.Bool()


class RevokeIn(Strict):
    """Why the image is bad."""

    reason = fields.Str(required=True, validate=REASON)


class RevokeOut(Schema):
    """The revoked image and where it still runs."""

    image = fields.Nested(ImageOut)
    running_in = fields.List(fields.Str())


class ScanIn(ImageRef):
    """A scan summary."""

    scanner = fields.Str(load_default="trivy", validate=validate.Length(1, 64))
    counts = fields.Dict(keys=fields.Str(validate=SEVERITY),
                         values=fields.Int(validate=validate.Range(min=0)), required=True)
    findings = fields.List(fields.Nested(lambda: FindingIn()), validate=validate.Length(max=1000))
    report_url = fields.Str(validate=URL)


class FindingIn(Strict):
    """One finding (enough to name it in a gate reason)."""

    id = fields.Str(required=True, validate=validate.Length(1, 128))
    severity = fields.Str(required=True, validate=SEVERITY)
    package = fields.Str(validate=validate.Length(max=255))
    title = fields.Str(validate=validate.Length(max=500))


class ScanOut(Record):
    """A recorded scan."""

    image_id = fields.Int()
    scanner = fields.Str()
    counts = fields.Dict()
    report_url = fields.Str()


class DeploymentIn(ImageEnvRef):
    """A deploy job's report."""

    state = fields.Str(required=True, validate=_one_of(
        DeploymentState, but=set(DeploymentState) - DEPLOYMENT_INITIAL))
    job_url = fields.Str(validate=URL)
    message = fields.Str(validate=TEXT)


class DeploymentPatch(Strict):
    """A deployment moving on."""

    state = fields.Str(required=True, validate=_one_of(DeploymentState))
    message = fields.Str(validate=TEXT)


class DeploymentOut(ImageEnvRecord):
    """A deployment."""

    promotion_id = fields.Int()
    state = fields.Str()
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
    expires_at = fields.DateTime()
    withdrawn_at = fields.DateTime()
    withdrawn_by = fields.Str()


class PromotionIn(ImageEnvRef):
    """Ask for a promotion."""

    reason = fields.Str(validate=TEXT)


def _env_name(obj: Any) -> str:
    return get_session().get(Environment, obj.environment_id).name


def _image_name(obj: Any) -> str:
    image = get_session().get(Image, obj.image_id)
    return f"{image.repository}@{image.digest}"


class PromotionOut(ImageEnvRecord):
    """A promotion."""

    image = fields.Function(_image_name)
    environment = fields.Function(_env_name)
    state = fields.Str()
    kind = fields.Str()
    requested_by = fields.Str()
    reason = fields.Str()
    pipeline_id = fields.Int()
    pipeline_url = fields.Str()
    failure_message = fields.Str()
    updated_at = fields.DateTime()


class PromotionMove(Strict):
    """A state move reported for a promotion (requested and superseded are the service's)."""

    state = fields.Str(required=True, validate=_one_of(
        PromotionState, but=(PromotionState.REQUESTED, PromotionState.SUPERSEDED)))
    message = fields.Str(validate=TEXT)


class PromotionFilters(Filters):
    """Filters for listing promotions."""

    project = fields.Str(validate=PROJECT)
    environment = fields.Str(validate=ENV_NAME)
    state = fields.Str(validate=_one_of(PromotionState))
    repository = fields.Str(validate=REPOSITORY)
    digest = fields.Str(validate=DIGEST)


class GateQuery(ImageEnvRef):
    """The gate's question."""

    project = fields.Str(validate=PROJECT)
    promotion_id = fields.Int(validate=BIG)
    pipeline_id = fields.Int(validate=BIG)

    @validates_schema
    def _pipeline_needs_promotion(self, data: dict[str, Any], **_: Any) -> None:
        if "pipeline_id" in data and "promotion_id" not in data:
            raise ValidationError("pipeline_id is only meaningful with promotion_id",
                                  "pipeline_id")


class ReasonOut(Schema):
    """What is missing and what would satisfy it."""

    code = fields.Str()
    message = fields.Str()
    satisfy = fields.Str()
    details = fields.Dict()


class GateOut(Schema):
    """The gate's answer."""

    allowed = fields.Bool()
    reasons = fields.List(fields.Nested(ReasonOut))
    image = fields.Str()
    environment = fields.Str()


class ReleaseOut(ImageEnvRecord):
    """A release of an image in an environment."""

    image = fields.Function(_image_name)
    promotion_id = fields.Int()
    deployment_id = fields.Int()
    verified_at = fields.DateTime()
    rolled_back_at = fields.DateTime()


class RollbackIn(Strict):
    """Why roll back."""

    reason = fields.Str(validate=TEXT)


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
    """An environment policy (same keys as the policy file)."""

    auto_promote = fields.Bool()
    promote_on_approval = fields.Bool()
    required_approvals = fields.Int(validate=validate.Range(min=0, max=50))
    approver_roles = fields.List(fields.Str(validate=validate.OneOf(
        [r for r in ROLES if r != "ci"])))
    four_eyes = fields.Bool()
    approval_ttl = fields.Raw()
    min_soak = fields.Raw()
    max_severity = fields.Str(allow_none=True)
    freeze_windows = fields.List(fields.Dict())

    @validates_schema
    def _domain_rules(self, data: dict[str, Any], **_: Any) -> None:
        try:
            EnvironmentPolicy.from_dict(data, "policy")
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
