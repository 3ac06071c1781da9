"""/api/v1/scans: record a scan summary for an image."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..db import get_session
from ..domain.actor import REPORTERS
from ..services import reports
from .auth import current_actor, require_roles
from .schemas.images import ScanIn, ScanOut

blp = Blueprint("scans", __name__, description="Scan results (the gate reads the latest)")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(ScanIn())
@blp.response(201, ScanOut)
def record(data: dict[str, Any]) -> Any:
    """Record a scan summary (counts per severity, optional findings)."""
    return reports.record_scan(get_session(), current_actor(), **data)
