"""/api/v1/gate: may this image go into this environment now? (deploy jobs, MR gates)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from .. import db
from ..auth import current_actor, require_token
from ..store import gate, images
from .common import image_and_env, scoped
from .schemas import GateOut, GateQuery

blp = Blueprint("gate", __name__, description="The gate deploy jobs ask before deploying")


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(GateQuery, location="query")
@blp.response(200, GateOut)
def ask(query: dict[str, Any]) -> Any:
    """Allowed or not, with every reason; with promotion_id + pipeline_id, claims the promotion."""
    session = db.get_session()
    image, env = image_and_env(query)
    scoped(current_actor(), image)
    if "project" in query and images.project_path(session, image) != query["project"]:
        from ..errors import Invalid

        raise Invalid.field("project", "the image belongs to another project", "query")
    if "pipeline_id" in query:
        db.begin_write(session)
    decision = gate.for_deploy(session, image, env, query.get("promotion_id"),
                               query.get("pipeline_id"))
    session.commit()
    return {"allowed": decision.allowed, "reasons": [r.to_dict() for r in decision.reasons],
            "image": f"{image.repository}@{image.digest}", "environment": env.name}
