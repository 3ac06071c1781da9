"""/api/v1/audit: read the audit log."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import select

from ..auth import require_token
from ..models import AuditEntry
from .common import SelectPage
from .schemas import AuditFilters, AuditOut

blp = Blueprint("audit", __name__, description="The append-only, hash-chained audit log")


@blp.route("", methods=["GET"])
@require_token
@blp.arguments(AuditFilters(), location="query")
@blp.response(200, AuditOut(many=True))
@blp.paginate(SelectPage)
def entries(filters: dict[str, Any]) -> Any:
    """Audit entries, newest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc())
    for key, value in filters.items():
        stmt = stmt.where(getattr(AuditEntry, key) == value)
    return stmt
