"""/api/v1/approvals: approve or reject a digest for an environment."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..domain.actor import APPROVERS
from ..services import approvals
from .auth import current_actor, require_roles, require_token
from .schemas.base import ReleaseEnvQuery
from .schemas.reports import ApprovalIn, ApprovalOut

blp = Blueprint("approvals", __name__, description="Approvals and rejections")


@blp.route("", methods=["POST"])
@require_roles(*APPROVERS)
@blp.arguments(ApprovalIn())
@blp.response(201, ApprovalOut)
@blp.alt_response(200, schema=ApprovalOut, description="the same decision again (idempotent)")
def decide(data: dict[str, Any]) -> Any:
    """Approve or reject; the last required approval may start the promotion."""
    record, created = approvals.decide(get_session(), current_actor(), **data)
    return record, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(ReleaseEnvQuery(), location="query")
@blp.response(200, ApprovalOut(many=True))
def standing(query: dict[str, Any]) -> Any:
    """Approvals and rejections standing for an image and environment."""
    return approvals.standing(get_session(), current_actor(), **query)


@blp.route("/<int:approval_id>", methods=["DELETE"])
@require_roles(*APPROVERS)
@blp.response(200, ApprovalOut)
def withdraw(approval_id: int) -> Any:
    """Withdraw an approval or a rejection."""
    return approvals.withdraw(get_session(), current_actor(), approval_id)
