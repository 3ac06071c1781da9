"""What /ready and /metrics report: is the schema migrated, and the service's gauges."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db.schema import current_revision, schema_head
from ..store import images, outbox, promotions


@dataclass(frozen=True)
class Readiness:
    """Whether the database answers at the schema this code needs; if not, what to do."""

    ready: bool
    reachable: bool
    schema: str | None = None
    problem: str | None = None


def readiness(session: Session) -> Readiness:
    """The database answers and its schema is the newest this code ships."""
    try:
        version = current_revision(session)
    except SQLAlchemyError as exc:
        session.rollback()
        return Readiness(False, False, problem=f"database not ready ({type(exc).__name__}); "
                                               "run 'promotion-service db upgrade'")
    head = schema_head()
    if version != head:
        return Readiness(False, True, version, f"database schema is at {version}, the code "
                                               f"needs {head}; run 'promotion-service db upgrade'")
    return Readiness(True, True, version)


@dataclass(frozen=True)
class Gauges:
    """Figures read from the database, so every worker process reports the same."""

    images: int
    promotions_by_state: list[tuple[str, int]]
    outbox_by_state: list[tuple[str, int]]


def gauges(session: Session) -> Gauges:
    """The service's gauges now."""
    return Gauges(images.count(session), promotions.counts_by_state(session),
                  outbox.counts_by_state(session))
