"""/api/v1/verifications: smoke-check results."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..domain.actor import REPORTERS
from ..services import reports
from .auth import current_actor, require_roles
from .schemas.reports import VerificationIn, VerificationOut

blp = Blueprint("verifications", __name__, description="Verification results")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(VerificationIn())
@blp.response(201, VerificationOut)
def record(data: dict[str, Any]) -> Any:
    """Report a verification; a pass may promote the image onward automatically."""
    return reports.record_verification(get_session(), current_actor(), **data)
