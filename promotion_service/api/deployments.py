"""/api/v1/deployments: deploy jobs report start, success, failure, rollback."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..auth import REPORTERS, current_actor, require_roles
from ..db import get_session
from ..store import reports
from .common import image_and_env
from .schemas import DeploymentIn, DeploymentOut, DeploymentPatch

blp = Blueprint("deployments", __name__, description="Deployments reported by deploy jobs")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(DeploymentIn())
@blp.response(201, DeploymentOut)
def record(data: dict[str, Any]) -> Any:
    """Report a deployment of an image to an environment."""
    session = get_session()
    image, env = image_and_env(data)
    deployment = reports.record_deployment(session, current_actor(), image, env,
                                           state=data["state"], job_url=data.get("job_url"),
                                           message=data.get("message"))
    session.commit()
    return deployment


@blp.route("/<int:deployment_id>", methods=["PATCH"])
@require_roles(*REPORTERS)
@blp.arguments(DeploymentPatch())
@blp.response(200, DeploymentOut)
def update(data: dict[str, Any], deployment_id: int) -> Any:
    """Move a deployment on (an illegal move is a 409 naming the legal ones)."""
    session = get_session()
    deployment = reports.update_deployment(session, current_actor(), deployment_id, **data)
    session.commit()
    return deployment
