"""/api/v1/stops: emergency stops across all projects."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..domain.actor import MANAGERS
from ..services import stops
from .auth import current_actor, require_roles, require_token
from .schemas.projects import StopIn, StopOut

blp = Blueprint("stops", __name__, description="Emergency stops")


@blp.route("", methods=["POST"])
@require_roles(*MANAGERS)
@blp.arguments(StopIn())
@blp.response(201, StopOut(many=True))
def stop(data: dict[str, Any]) -> Any:
    """Stop promotion into these environments in every project until lifted."""
    return stops.stop(get_session(), current_actor(), data["environments"], data["reason"])


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
    return stops.lift(get_session(), current_actor(), stop_id)
