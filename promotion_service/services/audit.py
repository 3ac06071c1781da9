"""The audit log: read it, and check that its hash chain is unbroken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from ..db.listing import Listing
from ..domain.actor import Actor
from ..domain.audit_chain import ChainBreak, verify_chain
from ..store import audit, projects


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


def listing(session: Session, actor: Actor, filters: dict[str, Any]) -> Listing:
    """Entries, newest first, filtered by subject, action or actor; a project-scoped token
    reads only the entries about its project (its images, promotions, deployments,
    environments and the project itself)."""
    project_id = None
    if actor.project is not None:
        found = projects.by_path(session, actor.project)
        project_id = found.id if found is not None else -1
    return audit.listing(session, filters, project_id)
