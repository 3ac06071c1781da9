"""/api/v1/stops: emergency stops across all projects."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..auth import MANAGERS, current_actor, require_roles, require_token
from ..db import get_session
from ..store import stops
from .schemas import StopIn, StopOut

blp = Blueprint("stops", __name__, description="Emergency stops")


@blp.route("", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(StopIn())
@blp.response(201, StopOut(many=True))
def stop(data: dict[str, Any]) -> Any:
    """Stop promotion into these environments in every project until lifted."""
    session = get_session()
    rows = stops.stop(session, current_actor(), data["environments"], data["reason"])
    session.commit()
    return rows


@blp.route("", methods=["GET"])
@require_token
@blp.response(200, StopOut(many=True))
def active() -> Any:
    """Stops in force."""
    return stops.active(get_session())


@blp.route("/<int:stop_id>", methods=["DELETE"])
@require_roles(*MANAGERS)
@blp.response(200, StopOut)
def lift(stop_id: int) -> Any:
    """Lift a stop."""
    session = get_session()
    row = stops.lift(session, current_actor(), stop_id)
    session.commit()
    return row
