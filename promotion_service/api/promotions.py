"""/api/v1/promotions: request (gate evaluated), list, show, move on."""

from __future__ import annotations

from typing import Any

from ..db import get_session
from ..domain.actor import REPORTERS
from ..services import promotion
from .auth import current_actor, require_roles, require_token
from .pagination import Blueprint
from .schemas.promotions import PromotionFilters, PromotionIn, PromotionMove, PromotionOut

blp = Blueprint("promotions", __name__, description="Promotions of images into environments")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(PromotionIn())
@blp.response(201, PromotionOut)
@blp.alt_response(200, schema=PromotionOut, description="one is already in flight")
@blp.alt_response(409, description="refused: every reason, with what would satisfy it")
def request_promotion(data: dict[str, Any]) -> Any:
    """Ask to promote an image; the gate decides; a race yields one promotion."""
    requested, created = promotion.request(get_session(), current_actor(), **data)
    return requested, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(PromotionFilters(), location="query")
@blp.response(200, PromotionOut(many=True))
@blp.paginate_listing()
def list_promotions(filters: dict[str, Any]) -> Any:
    """List promotions, newest first."""
    return promotion.listing(get_session(), current_actor(), **filters)


@blp.route("/<int:promotion_id>", methods=["GET"])
@require_token
@blp.response(200, PromotionOut)
def show(promotion_id: int) -> Any:
    """One promotion."""
    return promotion.get(get_session(), current_actor(), promotion_id)


@blp.route("/<int:promotion_id>", methods=["PATCH"])
@require_roles(*REPORTERS)
@blp.arguments(PromotionMove())
@blp.response(200, PromotionOut)
def move(data: dict[str, Any], promotion_id: int) -> Any:
    """Move a promotion on; an illegal move is a 409 (checked by the database)."""
    return promotion.move(get_session(), current_actor(), promotion_id, data["state"],
                          data.get("message"))
