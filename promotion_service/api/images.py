"""/api/v1/images: register, list, show, revoke."""

from __future__ import annotations

from typing import Any

from ..db import get_session
from ..domain.actor import MANAGERS, REPORTERS
from ..services import images, releases
from .auth import current_actor, require_roles, require_token
from .context import policies
from .pagination import Blueprint
from .schemas.images import ImageDetail, ImageFilters, ImageIn, ImageOut, RevokeIn, RevokeOut

blp = Blueprint("images", __name__, description="Images, named by repository and digest")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(ImageIn())
@blp.response(201, ImageOut)
@blp.alt_response(200, schema=ImageOut, description="already registered (idempotent)")
def register(data: dict[str, Any]) -> Any:
    """Register an image and its one-member release; the same repository and digest return
    the existing one."""
    image, created = releases.register_image(get_session(), current_actor(), policies(),
                                             **data)
    return image, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(ImageFilters(), location="query")
@blp.response(200, ImageOut(many=True))
@blp.paginate_listing()
def list_images(filters: dict[str, Any]) -> Any:
    """List images, newest first (filter by project, repository, digest, commit, revoked)."""
    return images.listing(get_session(), current_actor(), **filters)


@blp.route("/<int:image_id>", methods=["GET"])
@require_token
@blp.response(200, ImageDetail)
def show(image_id: int) -> Any:
    """An image and its state in each environment of its project."""
    return images.detail(get_session(), current_actor(), image_id)


@blp.route("/<int:image_id>/revoke", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(RevokeIn())
@blp.response(200, RevokeOut)
def revoke(data: dict[str, Any], image_id: int) -> Any:
    """Revoke an image for good: no release containing it goes anywhere; lists those
    releases and the environments running them."""
    return images.revoke(get_session(), current_actor(), image_id, data["reason"])
