"""/api/v1/gate: may this image go into this environment now? (deploy jobs, MR gates)."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask_smorest import Blueprint

from .. import db
from ..auth import current_actor, require_token
from ..errors import Invalid
from ..store import gate, projects
from .common import query_arguments
from .schemas import GateOut, GateQuery

blp = Blueprint("gate", __name__, description="The gate deploy jobs ask before deploying")


@blp.route("", methods=["GET"])
@require_token
@query_arguments(blp, GateQuery())
@blp.response(200, GateOut)
def ask(query: dict[str, Any]) -> Any:
    """Allowed or not, with every reason; with promotion_id + pipeline_id, claims the promotion."""
    promotion = "promotion_id" in query  # promotions go through the ORM session (claims write)
    conn = db.get_session() if promotion else db.read_connection()
    row = gate.lookup(conn, query["repository"], query["digest"], query["environment"])
    projects.check_scope(current_actor(), row.project_path)
    if "project" in query and row.project_path != query["project"]:
        raise Invalid.field("project", f"the image belongs to project {row.project_path}",
                            "query")
    if not promotion:
        decision = gate.for_image(conn, row)
    else:
        session = db.get_session()
        claiming = "pipeline_id" in query
        if claiming:
            db.begin_write(session)
        decision = gate.for_deploy(session, row, query["promotion_id"], query.get("pipeline_id"))
        if claiming:
            session.commit()
    # already GateOut's exact shape: answer directly rather than dump it again per request
    return jsonify({"allowed": decision.allowed,
                    "reasons": [r.to_dict() for r in decision.reasons],
                    "image": row.image_ref, "environment": row.environment})
