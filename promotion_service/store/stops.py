"""Emergency stops: no promotion into the named environments, in any project."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..domain.actor import Actor
from ..errors import Forbidden, NotFound
from ..models import EmergencyStop, utcnow
from . import audit


def stop(session: Session, actor: Actor, environments: list[str],
         reason: str) -> list[EmergencyStop]:
    """Freeze promotion into each environment (one already stopped keeps its stop)."""
    if actor.project is not None:
        raise Forbidden("an emergency stop spans all projects; use a token without a project scope")
    result = []
    for name in dict.fromkeys(environments):
        existing = session.scalar(select(EmergencyStop).where(
            EmergencyStop.environment == name, EmergencyStop.lifted_at.is_(None)))
        if existing is not None:
            result.append(existing)
            continue
        row = EmergencyStop(environment=name, reason=reason, actor=actor.name)
        session.add(row)
        session.flush()
        audit.append(session, actor, "stop.created", "stop", row.id,
                     after={"environment": name, "reason": reason})
        result.append(row)
    return result


def lift(session: Session, actor: Actor, stop_id: int) -> EmergencyStop:
    """Let promotion into the environment resume."""
    if actor.project is not None:
        raise Forbidden("an emergency stop spans all projects; use a token without a project scope")
    row = session.get(EmergencyStop, stop_id)
    if row is None:
        raise NotFound(f"no emergency stop with id {stop_id}")
    if row.lifted_at is None:
        row.lifted_at, row.lifted_by = utcnow(), actor.name
        session.flush()
        audit.append(session, actor, "stop.lifted", "stop", row.id,
                     before={"environment": row.environment}, after={"lifted": True})
    return row


def active(session: Session) -> list[EmergencyStop]:
    """Stops in force."""
    return list(session.scalars(select(EmergencyStop).where(EmergencyStop.lifted_at.is_(None))
                                .order_by(EmergencyStop.id)))
