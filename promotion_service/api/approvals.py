"""/api/v1/approvals: approve or reject a digest for an environment."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..auth import APPROVERS, current_actor, require_roles, require_token
from ..db import get_session
from ..store import approvals
from .common import image_and_env
from .schemas import ApprovalIn, ApprovalOut, ImageEnvRef

blp = Blueprint("approvals", __name__, description="Approvals and rejections")


@blp.route("", methods=["POST"])
@require_roles(*APPROVERS)
@blp.arguments(ApprovalIn())
@blp.response(201, ApprovalOut)
@blp.alt_response(200, schema=ApprovalOut, description="the same decision again (idempotent)")
def decide(data: dict[str, Any]) -> Any:
    """Approve or reject; the last required approval may start the promotion."""
    session = get_session()
    image, env = image_and_env(data)
    record, created = approvals.decide(
        session, current_actor(), image, env, decision=data["decision"],
        comment=data.get("comment"), expires_in=data.get("expires_in"))
    session.commit()
    return record, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(ImageEnvRef(), location="query")
@blp.response(200, ApprovalOut(many=True))
def standing(query: dict[str, Any]) -> Any:
    """Approvals and rejections standing for an image and environment."""
    image, env = image_and_env(query)
    return approvals.standing(get_session(), image.id, env.id)


@blp.route("/<int:approval_id>", methods=["DELETE"])
@require_roles(*APPROVERS)
@blp.response(200, ApprovalOut)
def withdraw(approval_id: int) -> Any:
    """Withdraw an approval or a rejection."""
    session = get_session()
    record = approvals.withdraw(session, current_actor(), approval_id)
    session.commit()
    return record
