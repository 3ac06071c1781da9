"""What every schema shares: field validators, strict bodies, lenient query strings, references."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from ...domain.policy import SEVERITIES

DIGEST = validate.Regexp(r"^sha256:[0-9a-f]{64}$",
                         error="must be 'sha256:' followed by 64 lower-case hex digits")
# lists, not validate.And: the OpenAPI document then shows each length and pattern
REPOSITORY = [validate.Length(1, 255), validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
    error="must be an image repository like registry.example.com/group/app (no tag, no digest)")]
PROJECT = [validate.Length(1, 255), validate.Regexp(
    r"^[A-Za-z0-9_.][A-Za-z0-9_./-]*$", error="must be a GitLab project path like group/app")]
MEMBER_NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,62}$", error=(
    "must be a Compose service name: lower-case letters, digits, '_' and '-' (<= 63)"))
ENV_NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_.-]{0,63}$",
                           error="must be an environment name like staging")
SHA = validate.Regexp(r"^[0-9a-f]{7,64}$", error="must be a hex commit SHA")
TEXT = validate.Length(max=4000)
REASON = validate.Length(1, 4000)
SEVERITY = validate.OneOf((*SEVERITIES, "unknown"))
# a link the pages show: http(s) only, never javascript: or data:
URL = [validate.Length(max=2048),
       validate.Regexp(r"^https?://[^/\s][^\s]*$", error="must be an http:// or https:// URL")]
# integers fit the column they land in (INTEGER is 32 bits on PostgreSQL, BIGINT 64)
ID = validate.Range(min=1, max=2**31 - 1)
COUNT = validate.Range(min=0, max=2**31 - 1)
BIG = validate.Range(min=0, max=2**63 - 1)


class JsonBool(fields.Boolean):
    """A JSON body's boolean: true or false, not 0, 1 or "yes"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


# a time in a JSON body as RFC 3339 writes it (upper-case T and Z), in years that stay valid
# whatever the offset
ISO_TIME = validate.Regexp(
    r"^(19[7-9][0-9]|[2-8][0-9]{3})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"([.][0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$",
    error="must be a time like 2026-12-24T00:00:00Z (years 1970 to 8999)")
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


class UtcDateTime(fields.DateTime):
    """A stored time (naive UTC) shown with its time zone, as `date-time` promises."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> Any:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class Record(Schema):
    """What every stored row shows: its id and when it was made."""

    id = fields.Int()
    created_at = UtcDateTime()


class ReleaseEnvRecord(Record):
    """A row about one release in one environment (deployments, verifications, approvals)."""

    release_id = fields.Int()
    environment_id = fields.Int()


def one_of(states: Any, but: Any = ()) -> validate.OneOf:
    """The values of a state enum (in its order) as the only choices, so the two never drift."""
    return validate.OneOf([str(s) for s in states if s not in but])


class ImageRef(Strict):
    """Which image (by digest, never by tag)."""

    repository = fields.Str(required=True, validate=REPOSITORY)
    digest = fields.Str(required=True, validate=DIGEST)


class ReleaseEnvRef(Strict):
    """Which release (by id, or an image by repository and digest: its one-member release),
    in which environment."""

    release_id = fields.Int(strict=True, validate=ID, metadata={
        "description": "the release (CD_RELEASE_ID); or give repository and digest"})
    repository = fields.Str(validate=REPOSITORY, metadata={
        "description": "with digest: the image whose one-member release is meant"})
    digest = fields.Str(validate=DIGEST)
    environment = fields.Str(required=True, validate=ENV_NAME)

    @validates_schema(skip_on_field_errors=False)  # named with the other missing fields
    def _release_or_image(self, data: dict[str, Any], **_: Any) -> None:
        if ("repository" in data) != ("digest" in data):
            raise ValidationError("give the image as repository and digest together",
                                  "digest" if "repository" in data else "repository")
        if "release_id" not in data and "digest" not in data:
            raise ValidationError("name the release (release_id), or the image (repository "
                                  "and digest)", "release_id")
        if "release_id" in data and "digest" in data:
            raise ValidationError("name the release or the image, not both", "release_id")


class ReleaseEnvQuery(ReleaseEnvRef):
    """The same question in a query string (where every value is a string)."""

    release_id = fields.Int(validate=ID, metadata={
        "description": "the release (CD_RELEASE_ID); or give repository and digest"})


class ReasonOut(Schema):
    """What is missing and what would satisfy it."""

    code = fields.Str()
    message = fields.Str()
    satisfy = fields.Str()
    details = fields.Dict()


class ErrorOut(Schema):
    """The one shape of every error answer."""

    code = fields.Int(metadata={"description": "the HTTP status"})
    status = fields.Str(metadata={"description": "the HTTP status's name"})
    message = fields.Str(metadata={"description": "what went wrong and, where known, the fix"})
    errors = fields.Dict(metadata={
        "description": "invalid fields, keyed by location (json, query) then field"})
    reasons = fields.List(fields.Nested(ReasonOut),
                          metadata={"description": "why the gate refused (409)"})
    request_id = fields.Str(metadata={"description": "finds the request in the service's log"})
