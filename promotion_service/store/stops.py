"""Emergency stops: no promotion into an environment name, in any project, until lifted."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import EmergencyStop


def active_for(session: Session, environment: str) -> EmergencyStop | None:
    """The stop in force for this environment name, if any."""
    return session.scalar(select(EmergencyStop).where(
        EmergencyStop.environment == environment, EmergencyStop.lifted_at.is_(None)))


def active(session: Session) -> list[EmergencyStop]:
    """Stops in force, oldest first."""
    return list(session.scalars(select(EmergencyStop).where(EmergencyStop.lifted_at.is_(None))
                                .order_by(EmergencyStop.id)))


def get(session: Session, stop_id: int) -> EmergencyStop | None:
    """The stop with this id, if any."""
    return session.get(EmergencyStop, stop_id)


def add(session: Session, *, environment: str, reason: str, actor: str) -> EmergencyStop:
    """A new stop (flushed, so it has its id)."""
    row = EmergencyStop(environment=environment, reason=reason, actor=actor)
    session.add(row)
    session.flush()
    return row
