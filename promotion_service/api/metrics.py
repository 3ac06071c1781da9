"""/api/v1/metrics/dora: DORA's four keys per project and environment, from the ledger."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..services import dora
from .auth import current_actor, require_token
from .schemas.metrics import DoraFilters, DoraOut

blp = Blueprint("metrics", __name__, description="Delivery metrics (DORA)")


@blp.route("/dora", methods=["GET"])
@require_token
@blp.arguments(DoraFilters(), location="query")
@blp.response(200, DoraOut(many=True))
def dora_keys(query: dict[str, Any]) -> Any:
    """Deployment frequency, lead time, change failure rate and time to restore per project
    and environment over the last `days` (a project-scoped token sees its project's)."""
    return dora.report(get_session(), current_actor(), project=query.get("project"),
                       environment=query.get("environment"), days=query["days"])
