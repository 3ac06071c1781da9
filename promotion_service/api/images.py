"""/api/v1/images: register, list, show, revoke."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from ..auth import MANAGERS, REPORTERS, current_actor, require_roles, require_token
from ..db import get_session
from ..models import ApprovalRecord, Deployment, Promotion, Verification
from ..store import images, projects, releases, reports
from .common import Extended, SelectPage, policies
from .schemas import ImageDetail, ImageFilters, ImageIn, ImageOut, RevokeIn, RevokeOut

blp = Blueprint("images", __name__, description="Images, named by repository and digest")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS, lock_late=True)
@blp.arguments(ImageIn())
@blp.response(201, ImageOut)
@blp.alt_response(200, schema=ImageOut, description="already registered (idempotent)")
def register(data: dict[str, Any]) -> Any:
    """Register an image; the same repository and digest returns the existing one."""
    session = get_session()
    image, created = images.register(session, current_actor(), policies(), **data)
    session.commit()
    return image, 201 if created else 200


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(ImageFilters(), location="query")
@blp.response(200, ImageOut(many=True))
@blp.paginate(SelectPage)
def list_images(filters: dict[str, Any]) -> Any:
    """List images, newest first (filter by project, repository, digest, commit, revoked)."""
    return images.query(**filters)


@blp.route("/<int:image_id>", methods=["GET"])
@require_token
@blp.response(200, ImageDetail)
def show(image_id: int) -> Any:
    """An image and its state in each environment of its project."""
    session = get_session()
    image = images.get_by_id(session, image_id)
    return Extended(image, project=images.project_path(session, image),
                    scan=reports.latest_scan(session, image.id),
                    environments=[_env_status(session, image, env)
                                  for env in projects.environments(session, image.project_id)])


@blp.route("/<int:image_id>/revoke", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(RevokeIn())
@blp.response(200, RevokeOut)
def revoke(data: dict[str, Any], image_id: int) -> Any:
    """Revoke an image for good: no promotion anywhere; lists where it still runs."""
    session = get_session()
    image = images.get_by_id(session, image_id)
    images.revoke(session, current_actor(), image, data["reason"])
    session.commit()
    return {"image": image, "running_in": images.running_in(session, image)}


def _env_status(session: Any, image: Any, env: Any) -> dict[str, Any]:
    def last(model: Any) -> Any:
        return session.scalar(select(model).where(model.image_id == image.id,
                                                  model.environment_id == env.id)
                              .order_by(model.id.desc()).limit(1))

    deployment, verification, promotion = last(Deployment), last(Verification), last(Promotion)
    live = releases.current(session, env.id)
    approvals = session.scalars(select(ApprovalRecord).where(
        ApprovalRecord.image_id == image.id, ApprovalRecord.environment_id == env.id,
        ApprovalRecord.withdrawn_at.is_(None))).all()
    return {
        "environment": env.name,
        "live": live is not None and live.image_id == image.id,
        "deployment": deployment and {"id": deployment.id, "state": deployment.state},
        "verification": verification and {"id": verification.id, "passed": verification.passed},
        "promotion": promotion and {"id": promotion.id, "state": promotion.state},
        "approvals": [{"id": a.id, "actor": a.actor, "decision": a.decision} for a in approvals],
    }
