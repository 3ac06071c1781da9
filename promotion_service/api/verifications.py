"""/api/v1/verifications: smoke-check results."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..auth import REPORTERS, current_actor, require_roles
from ..db import get_session
from ..store import reports
from .common import image_and_env
from .schemas import VerificationIn, VerificationOut

blp = Blueprint("verifications", __name__, description="Verification results")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(VerificationIn())
@blp.response(201, VerificationOut)
def record(data: dict[str, Any]) -> Any:
    """Report a verification; a pass may promote the image onward automatically."""
    session = get_session()
    image, env = image_and_env(data)
    verification = reports.record_verification(
        session, current_actor(), image, env, passed=data["passed"],
        details=data.get("details"), job_url=data.get("job_url"))
    session.commit()
    return verification
