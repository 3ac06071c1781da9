"""Releases: a set of images by digest (members) and the template they run with."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ...domain.releases import MAX_MEMBERS
from .base import (
    DIGEST,
    MEMBER_NAME,
    PROJECT,
    REPOSITORY,
    SHA,
    Filters,
    JsonBool,
    Strict,
)
from .images import RegisteredOut, Registration
from .reports import TEMPLATE_HASH


class MemberIn(Strict):
    """One image of the release, under its Compose service name."""

    name = fields.Str(required=True, validate=MEMBER_NAME)
    repository = fields.Str(required=True, validate=REPOSITORY)
    digest = fields.Str(required=True, validate=DIGEST)
    built = JsonBool(load_default=True, metadata={
        "description": "built by the pipeline (true), or a third-party image pinned by digest "
                       "at release time (false: no scan required, any repository)"})


class ReleaseIn(Registration):
    """Register a release; the same members and template_hash return the existing one."""

    members = fields.List(fields.Nested(MemberIn), required=True,
                          validate=validate.Length(1, MAX_MEMBERS))
    template_hash = fields.Str(validate=TEMPLATE_HASH, metadata={
        "description": "sha256 over the application's deploy files (docker-cd register)"})


class MemberOut(Schema):
    """A member as the API shows it."""

    name = fields.Str()
    repository = fields.Str()
    digest = fields.Str()
    built = fields.Bool()
    image_id = fields.Int()


class ReleaseOut(RegisteredOut):
    """A release as the API shows it."""

    id = fields.Int()
    digest = fields.Str(metadata={"description": "sha256 of its canonical JSON (its identity)"})
    project_id = fields.Int()
    members = fields.List(fields.Nested(MemberOut))
    template_hash = fields.Str(allow_none=True)
    revoked = fields.Function(lambda r: r.revoked_at is not None, metadata={"type": "boolean"})
    revoked_reason = fields.Str(allow_none=True)


class ReleaseDetail(ReleaseOut):
    """A release with its project and the environments where it is live."""

    project = fields.Str()
    environments = fields.List(fields.Str())


class ReleaseFilters(Filters):
    """Filters for listing releases."""

    project = fields.Str(validate=PROJECT)
    digest = fields.Str(validate=DIGEST)
    commit_sha = fields.Str(validate=SHA)
    revoked = fields.Bool()
