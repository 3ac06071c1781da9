"""Images and their scans."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .base import (
    BIG,
    COUNT,
    DIGEST,
    MEMBER_NAME,
    PROJECT,
    REASON,
    REPOSITORY,
    SEVERITY,
    SHA,
    URL,
    Filters,
    ImageRef,
    Record,
    Strict,
    UtcDateTime,
)


class Registration(Strict):
    """What a pipeline registers with: the project and its pipeline's facts."""

    project = fields.Str(required=True, validate=PROJECT)
    gitlab_project_id = fields.Int(strict=True, validate=BIG)
    commit_sha = fields.Str(validate=SHA)
    commit_time = fields.AwareDateTime(default_timezone=None)
    ref = fields.Str(validate=validate.Length(max=255))
    tags = fields.List(fields.Str(validate=validate.Length(1, 128)),
                       validate=validate.Length(max=100))
    pipeline_id = fields.Int(strict=True, validate=BIG)
    pipeline_url = fields.Str(validate=URL)
    triggered_by = fields.Str(validate=validate.Length(1, 255), metadata={
        "description": "who ran the pipeline; with a CI job's ID token it comes from the token"})
    commit_author = fields.Str(validate=validate.Length(1, 255), metadata={
        "description": "the commit's author as git gives it (CI_COMMIT_AUTHOR: Name <e-mail>)"})


class ImageIn(ImageRef, Registration):
    """Register an image (and its one-member release)."""

    name = fields.Str(validate=MEMBER_NAME, metadata={
        "description": "its one-member release's member name (the Compose service); app"})


class RegisteredOut(Schema):
    """What a pipeline registered, as the API shows it: its facts and who sent it."""

    commit_sha = fields.Str(allow_none=True)
    commit_time = UtcDateTime(allow_none=True)
    ref = fields.Str(allow_none=True)
    tags = fields.List(fields.Str())
    pipeline_id = fields.Int(allow_none=True)
    pipeline_url = fields.Str(allow_none=True)
    triggered_by = fields.Str(allow_none=True)
    commit_author = fields.Str(allow_none=True)
    registered_by = fields.Str()
    registered_via = fields.Str(metadata={"description": "token, or id_token (a CI job's)"})
    created_at = UtcDateTime()


class ImageOut(RegisteredOut):
    """An image as the API shows it."""

    id = fields.Int()
    release_id = fields.Int(metadata={
        "description": "its one-member release (registration and detail)"})
    project_id = fields.Int()
    repository = fields.Str()
    digest = fields.Str()
    image = fields.Function(lambda i: f"{i.repository}@{i.digest}",
                            metadata={"type": "string"})
    revoked = fields.Function(lambda i: i.revoked_at is not None, metadata={"type": "boolean"})
    revoked_at = UtcDateTime(allow_none=True)
    revoked_by = fields.Str(allow_none=True)
    revoked_reason = fields.Str(allow_none=True)


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
    """The revoked image, the releases it blocks and where they still run."""

    image = fields.Nested(ImageOut)
    running_in = fields.List(fields.Str())
    releases = fields.List(fields.Nested(lambda: BlockedRelease()))


class BlockedRelease(Schema):
    """A release containing a revoked image, and the environments running it."""

    id = fields.Int()
    digest = fields.Str()
    environments = fields.List(fields.Str())


class ScanIn(ImageRef):
    """A scan summary."""

    scanner = fields.Str(load_default="trivy", validate=validate.Length(1, 64))
    counts = fields.Nested(lambda: CountsIn(), required=True)
    findings = fields.List(fields.Nested(lambda: FindingIn()), validate=validate.Length(max=1000))
    report_url = fields.Str(validate=URL)


class CountsIn(Strict):
    """Findings per severity (a severity left out counts 0)."""

    critical = fields.Int(strict=True, validate=COUNT)
    high = fields.Int(strict=True, validate=COUNT)
    medium = fields.Int(strict=True, validate=COUNT)
    low = fields.Int(strict=True, validate=COUNT)
    unknown = fields.Int(strict=True, validate=COUNT)


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
    report_url = fields.Str(allow_none=True)
