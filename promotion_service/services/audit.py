"""The audit log: read it, and check that its hash chain is unbroken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from ..db.listing import Listing
from ..domain.audit_chain import ChainBreak, verify_chain
from ..store import audit


def verify(session: Session) -> tuple[int, ChainBreak | None]:
    """Check the whole chain: (entries checked, first break or None)."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for entry in audit.in_order(session):
            count += 1
            yield entry

    broken = verify_chain(counted())
    return count, broken


def listing(session: Session, filters: dict[str, Any]) -> Listing:
    """Entries, newest first, filtered by subject, action or actor."""
    return audit.listing(session, filters)
