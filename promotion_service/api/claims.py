"""/api/v1/claims: a deploy or rollback pipeline claims what it is about to deploy."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..domain.actor import REPORTERS
from ..services import claims
from .auth import current_actor, require_roles
from .schemas.claims import ClaimIn, ClaimOut

blp = Blueprint("claims", __name__, description="Deploy and rollback pipelines claim their "
                                                 "promotion (the first pipeline wins)")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(ClaimIn())
@blp.response(201, ClaimOut)
@blp.alt_response(409, description="refused: every reason, with what would satisfy it")
def claim(data: dict[str, Any]) -> Any:
    """Claim a promotion (or a rollback to a verified release) for the calling pipeline.

    The pipeline is the ID token's; with a service token, `pipeline_id` names it. An old
    deploy job run again (GitLab's environment Rollback) becomes a rollback to its verified
    release; every rollback holds the environment. Audited.
    """
    return claims.claim(get_session(), current_actor(), **data)
