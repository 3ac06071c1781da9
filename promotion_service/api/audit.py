"""/api/v1/audit: read the audit log."""

from __future__ import annotations

from typing import Any

from ..db import get_session
from ..services import audit
from .auth import current_actor, require_token
from .pagination import Blueprint
from .schemas.projects import AuditFilters, AuditOut

blp = Blueprint("audit", __name__, description="The append-only, hash-chained audit log")


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(AuditFilters(), location="query")
@blp.response(200, AuditOut(many=True))
@blp.paginate_listing()
def entries(filters: dict[str, Any]) -> Any:
    """Audit entries, newest first."""
    return audit.listing(get_session(), current_actor(), filters)
