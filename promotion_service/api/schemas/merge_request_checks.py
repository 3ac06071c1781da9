"""Merge-request gates: what was answered to GitLab, and the gate's answer for a commit."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from .base import ID, PROJECT, SHA, Filters, ReasonOut


class MergeRequestCheckFilters(Filters):
    """Filters for listing merge-request checks."""

    project = fields.Str(validate=PROJECT)
    mr_iid = fields.Int(validate=ID)
    sha = fields.Str(validate=SHA)


class MergeRequestCheckOut(Schema):
    """What the gate answered for a merge request's head commit."""

    id = fields.Int()
    gitlab_project_id = fields.Int()
    project = fields.Str()
    mr_iid = fields.Int()
    check_id = fields.Int(allow_none=True, metadata={
        "description": "the external status check; null when answered as a commit status"})
    sha = fields.Str()
    ref = fields.Str(allow_none=True)
    url = fields.Str(allow_none=True)
    status = fields.Str(metadata={"description": "passed, failed or pending"})
    reasons = fields.List(fields.Nested(ReasonOut))
    answered = fields.Str(allow_none=True, metadata={"description": "last status sent to GitLab"})
    updated_at = fields.Str(allow_none=True)


class MergeRequestGateQuery(Filters):
    """Which commit of which project."""

    project = fields.Str(required=True, validate=PROJECT)
    sha = fields.Str(required=True, validate=validate.Regexp(
        r"^[0-9a-f]{40}$", error="must be a full 40-hex commit SHA"))


class MergeRequestGateOut(Schema):
    """The merge-request gate's answer for a commit."""

    allowed = fields.Bool()
    status = fields.Str(metadata={"description": "passed, failed or pending (not ready yet)"})
    reasons = fields.List(fields.Nested(ReasonOut))
    release_id = fields.Int(allow_none=True)
