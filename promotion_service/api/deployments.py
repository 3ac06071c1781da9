"""/api/v1/deployments: deploy jobs report start, success, failure, rollback."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..domain.actor import REPORTERS
from ..services import reports
from .auth import current_actor, require_roles
from .schemas.reports import DeploymentIn, DeploymentOut, DeploymentPatch

blp = Blueprint("deployments", __name__, description="Deployments reported by deploy jobs")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(DeploymentIn())
@blp.response(201, DeploymentOut)
def record(data: dict[str, Any]) -> Any:
    """Report a deployment of an image to an environment."""
    return reports.record_deployment(get_session(), current_actor(), **data)


@blp.route("/<int:deployment_id>", methods=["PATCH"])
@require_roles(*REPORTERS)
@blp.arguments(DeploymentPatch())
@blp.response(200, DeploymentOut)
def update(data: dict[str, Any], deployment_id: int) -> Any:
    """Move a deployment on (an illegal move is a 409 naming the legal ones)."""
    return reports.update_deployment(get_session(), current_actor(), deployment_id, **data)
