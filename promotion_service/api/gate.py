"""/api/v1/gate: may this image go into this environment now? (deploy jobs, MR gates)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from .. import db
from ..auth import current_actor, require_token
from ..errors import Invalid
from ..store import gate, projects
from .schemas import GateOut, GateQuery

blp = Blueprint("gate", __name__, description="The gate deploy jobs ask before deploying")


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(GateQuery(), location="query")
@blp.response(200, GateOut)
def ask(query: dict[str, Any]) -> Any:
    """Allowed or not, with every reason; with promotion_id + pipeline_id, claims the promotion."""
    session = db.get_session()
    row = gate.lookup(session, query["repository"], query["digest"], query["environment"])
    projects.check_scope(current_actor(), row.project_path)
    if "project" in query and row.project_path != query["project"]:
        raise Invalid.field("project", f"the image belongs to project {row.project_path}",
                            "query")
    claiming = "pipeline_id" in query
    if claiming:
        db.begin_write(session)
    decision = gate.for_deploy(session, row, query.get("promotion_id"), query.get("pipeline_id"))
    if claiming:
        session.commit()
    return {"allowed": decision.allowed, "reasons": [r.to_dict() for r in decision.reasons],
            "image": row.image_ref, "environment": row.environment}
