"""/api/v1/promotions: request (gate evaluated), list, show, move on."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from ..auth import REPORTERS, current_actor, require_roles, require_token
from ..db import get_session
from ..models import Environment, Image, Project, Promotion
from ..store import images, promotions
from .common import SelectPage, image_and_env
from .schemas import PromotionFilters, PromotionIn, PromotionMove, PromotionOut

blp = Blueprint("promotions", __name__, description="Promotions of images into environments")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(PromotionIn())
@blp.response(201, PromotionOut)
@blp.alt_response(200, schema=PromotionOut, description="one is already in flight")
@blp.alt_response(409, description="refused: every reason, with what would satisfy it")
def request_promotion(data: dict[str, Any]) -> Any:
    """Ask to promote an image; the gate decides; a race yields one promotion."""
    session = get_session()
    image, env = image_and_env(data)
    promotion, created = promotions.request(session, current_actor(), image, env,
                                            data.get("reason"))
    session.commit()
    return promotion, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(PromotionFilters(), location="query")
@blp.response(200, PromotionOut(many=True))
@blp.paginate(SelectPage)
def list_promotions(filters: dict[str, Any]) -> Any:
    """List promotions, newest first."""
    stmt = (select(Promotion).join(Image, Image.id == Promotion.image_id)
            .join(Environment, Environment.id == Promotion.environment_id)
            .order_by(Promotion.id.desc()))
    if "project" in filters:
        stmt = stmt.join(Project, Project.id == Image.project_id).where(
            Project.path == filters["project"])
    for column, key in ((Environment.name, "environment"), (Promotion.state, "state"),
                        (Image.repository, "repository"), (Image.digest, "digest")):
        if key in filters:
            stmt = stmt.where(column == filters[key])
    return stmt


@blp.route("/<int:promotion_id>", methods=["GET"])
@require_token
@blp.response(200, PromotionOut)
def show(promotion_id: int) -> Any:
    """One promotion."""
    return promotions.get(get_session(), promotion_id)


@blp.route("/<int:promotion_id>", methods=["PATCH"])
@require_roles(*REPORTERS)
@blp.arguments(PromotionMove())
@blp.response(200, PromotionOut)
def move(data: dict[str, Any], promotion_id: int) -> Any:
    """Move a promotion on; an illegal move is a 409 (checked by the database)."""
    session = get_session()
    promotion = promotions.get(session, promotion_id)
    images.check_scope(session, current_actor(), session.get(Image, promotion.image_id))
    promotion = promotions.mark_state(session, promotion_id, data["state"], current_actor(),
                                      data.get("message"))
    session.commit()
    return promotion
