"""A pipeline's claim on what it deploys, and the answer."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from .base import BIG, DIGEST, ENV_NAME, ID, PROJECT, RELEASE_ID, REPOSITORY, URL, Strict
from .promotions import HoldOut, PromotionOut


class ClaimIn(Strict):
    """What the pipeline deploys: CD_RELEASE_ID or CD_IMAGE (a deploy), or a record to go back
    to (a rollback)."""

    kind = fields.Str(load_default="deploy", validate=validate.OneOf(("deploy", "rollback")))
    environment = fields.Str(required=True, validate=ENV_NAME)
    release_id = fields.Int(strict=True, validate=ID, metadata={
        "description": "the release deployed (CD_RELEASE_ID); or give repository and digest"})
    repository = fields.Str(validate=REPOSITORY)
    digest = fields.Str(validate=DIGEST)
    project = fields.Str(validate=PROJECT, metadata={
        "description": "the project (a rollback that names no release)"})
    promotion_id = fields.Int(validate=BIG, metadata={
        "description": "CD_PROMOTION_ID of a pipeline the service triggered"})
    record_id = fields.Str(validate=RELEASE_ID, metadata={
        "description": "a rollback: the target's record to restore (CD_ROLLBACK_TO, --to)"})
    pipeline_id = fields.Int(validate=BIG, metadata={
        "description": "the claiming pipeline; taken from the ID token when the job has one"})
    job_url = fields.Str(validate=URL)

    @validates_schema
    def _image_whole(self, data: dict[str, Any], **_: Any) -> None:
        if ("repository" in data) != ("digest" in data):
            raise ValidationError("give the image as repository and digest together",
                                  "digest" if "repository" in data else "repository")
        if "release_id" in data and "digest" in data:
            raise ValidationError("name the release or the image, not both", "release_id")
        if (data.get("kind", "deploy") == "deploy" and "digest" not in data
                and "release_id" not in data):
            raise ValidationError("a deploy claims the release it deploys (CD_RELEASE_ID, or "
                                  "the image: CD_IMAGE)", "release_id")


class ClaimOut(Schema):
    """The claimed promotion; for a rollback, the record the job restores."""

    allowed = fields.Function(lambda _: True, metadata={"type": "boolean"})
    promotion = fields.Nested(PromotionOut)
    release_id = fields.Function(lambda c: c.promotion.release_id, metadata={
        "type": "integer", "description": "the release deployed (or restored)"})
    record_id = fields.Str(allow_none=True, metadata={
        "description": "the target's record a rollback restores"})
    image = fields.Function(lambda c: c.promotion.image)
    environment = fields.Function(lambda c: c.promotion.environment)
    hold = fields.Nested(HoldOut, allow_none=True)
