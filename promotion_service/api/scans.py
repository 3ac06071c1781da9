"""/api/v1/scans: record a scan summary for an image."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..auth import REPORTERS, current_actor, require_roles
from ..db import get_session
from ..store import images, reports
from .schemas import ScanIn, ScanOut

blp = Blueprint("scans", __name__, description="Scan results (the gate reads the latest)")


@blp.route("", methods=["POST"])
@require_roles(*REPORTERS)
@blp.arguments(ScanIn())
@blp.response(201, ScanOut)
def record(data: dict[str, Any]) -> Any:
    """Record a scan summary (counts per severity, optional findings)."""
    session = get_session()
    image = images.get(session, data.pop("repository"), data.pop("digest"))
    scan = reports.record_scan(session, current_actor(), image, **data)
    session.commit()
    return scan
