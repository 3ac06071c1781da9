"""/api/v1/releases: register, list, show."""

from __future__ import annotations

from typing import Any

from ..db import get_session
from ..domain.actor import REPORTERS
from ..services import releases
from .auth import current_actor, require_roles, require_token
from .context import policies
from .pagination import Blueprint
from .schemas.releases import ReleaseDetail, ReleaseFilters, ReleaseIn, ReleaseOut

blp = Blueprint("releases", __name__,
                description="Releases: images by digest and the template they run with")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(ReleaseIn())
@blp.response(201, ReleaseOut)
@blp.alt_response(200, schema=ReleaseOut, description="already registered (idempotent)")
def register(data: dict[str, Any]) -> Any:
    """Register a release; the same members and template_hash return the existing one."""
    release, created = releases.register(get_session(), current_actor(), policies(), **data)
    return release, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(ReleaseFilters(), location="query")
@blp.response(200, ReleaseOut(many=True))
@blp.paginate_listing()
def list_releases(filters: dict[str, Any]) -> Any:
    """List releases, newest first (filter by project, digest, commit, revoked)."""
    return releases.listing(get_session(), current_actor(), **filters)


@blp.route("/<int:release_id>", methods=["GET"])
@require_token
@blp.response(200, ReleaseDetail)
def show(release_id: int) -> Any:
    """A release, its members and the environments where it is live."""
    return releases.detail(get_session(), current_actor(), release_id)
