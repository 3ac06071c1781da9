"""Promotions, the gate's question and answer, rollouts and rollback."""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from marshmallow import Schema, ValidationError, fields, validates_schema

from ...domain.states import PromotionState
from .base import (
    BIG,
    DIGEST,
    ENV_NAME,
    ID,
    PROJECT,
    REPOSITORY,
    TEXT,
    Filters,
    ReasonOut,
    ReleaseEnvQuery,
    ReleaseEnvRecord,
    ReleaseEnvRef,
    Strict,
    UtcDateTime,
    one_of,
)


class PromotionIn(ReleaseEnvRef):
    """Ask for a promotion."""

    reason = fields.Str(validate=TEXT)


class PromotionOut(ReleaseEnvRecord):
    """A promotion."""

    image = fields.Function(attrgetter("image"), metadata={
        "type": "string", "description": "its image (repository@digest), or for a release of "
                                         "several images: release <id> (<digest>)"})
    environment = fields.Function(attrgetter("environment"))
    state = fields.Str()
    kind = fields.Str()
    requested_by = fields.Str()
    reason = fields.Str(allow_none=True)
    pipeline_id = fields.Int(allow_none=True)
    pipeline_url = fields.Str(allow_none=True)
    record_id = fields.Str(allow_none=True,
                           metadata={"description": "the target's record a rollback restores"})
    failure_message = fields.Str(allow_none=True)
    updated_at = UtcDateTime()


class PromotionMove(Strict):
    """A state move reported for a promotion (requested and superseded are the service's)."""

    state = fields.Str(required=True, validate=one_of(
        PromotionState, but=(PromotionState.REQUESTED, PromotionState.SUPERSEDED)))
    message = fields.Str(validate=TEXT)


class PromotionFilters(Filters):
    """Filters for listing promotions."""

    project = fields.Str(validate=PROJECT)
    environment = fields.Str(validate=ENV_NAME)
    state = fields.Str(validate=one_of(PromotionState))
    repository = fields.Str(validate=REPOSITORY)
    digest = fields.Str(validate=DIGEST)
    release_id = fields.Int(validate=ID)


class GateQuery(ReleaseEnvQuery):
    """The gate's question."""

    project = fields.Str(validate=PROJECT)
    promotion_id = fields.Int(validate=ID)
    pipeline_id = fields.Int(validate=BIG)

    @validates_schema
    def _pipeline_needs_promotion(self, data: dict[str, Any], **_: Any) -> None:
        if "pipeline_id" in data and "promotion_id" not in data:
            raise ValidationError("pipeline_id is only meaningful with promotion_id",
                                  "pipeline_id")


class HoldOut(Schema):
    """A hold on the environment, and what lifts it."""

    reason = fields.Str()
    by = fields.Str()
    since = fields.Str()
    lift = fields.Str()


class GateOut(Schema):
    """The gate's answer."""

    allowed = fields.Bool()
    reasons = fields.List(fields.Nested(ReasonOut))
    release_id = fields.Int()
    image = fields.Str(allow_none=True, metadata={
        "description": "the image (repository@digest) of a release of one image"})
    environment = fields.Str()
    hold = fields.Nested(HoldOut, allow_none=True, metadata={
        "description": "the hold on automatic promotion into the environment, if any"})


class RolloutOut(ReleaseEnvRecord):
    """A release that went live in an environment."""

    image = fields.Function(attrgetter("image"), metadata={"type": "string"})
    release_digest = fields.Function(attrgetter("release_digest"), metadata={"type": "string"})
    promotion_id = fields.Int(allow_none=True)
    deployment_id = fields.Int(allow_none=True)
    record_id = fields.Str(allow_none=True,
                           metadata={"description": "the target's release record"})
    rollback_of = fields.Str(allow_none=True,
                             metadata={"description": "the record a rollback restored"})
    verified_at = UtcDateTime(allow_none=True)
    rolled_back_at = UtcDateTime(allow_none=True, metadata={
        "description": "when it was rolled back out of the environment (a rollback's "
                       "deployment went live, or its deploy job rolled it back)"})
    rolled_back_by = fields.Str(allow_none=True, metadata={
        "description": "who asked for the rollback that left it"})
    rolled_back_reason = fields.Str(allow_none=True, metadata={
        "description": "why it was rolled back"})


class RollbackIn(Strict):
    """Why roll back."""

    reason = fields.Str(validate=TEXT)
