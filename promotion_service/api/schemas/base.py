"""What every schema shares: field validators, strict bodies, lenient query strings, references."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from ...domain.policy import SEVERITIES

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
RELEASE_ID = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                             error="must be a release id like 20261126T171530123Z-3f2a")


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


def one_of(states: Any, but: Any = ()) -> validate.OneOf:
    """The values of a state enum (in its order) as the only choices, so the two never drift."""
    return validate.OneOf([str(s) for s in states if s not in but])


class ImageRef(Strict):
    """Which image (by digest, never by tag)."""

    repository = fields.Str(required=True, validate=REPOSITORY)
    digest = fields.Str(required=True, validate=DIGEST)


class ImageEnvRef(ImageRef):
    """Which image, in which environment."""

    environment = fields.Str(required=True, validate=ENV_NAME)


class ReasonOut(Schema):
    """What is missing and what would satisfy it."""

    code = fields.Str()
    message = fields.Str()
    satisfy = fields.Str()
    details = fields.Dict()
