"""Emergency stops: no promotion into the named environments, in any project."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import EmergencyStop, utcnow
from ..domain.actor import Actor
from ..errors import Forbidden, NotFound
from ..store import audit, stops

_ALL_PROJECTS = "an emergency stop spans all projects; use a token without a project scope"


def stop(session: Session, actor: Actor, environments: list[str],
         reason: str) -> list[EmergencyStop]:
    """Freeze promotion into each environment (one already stopped keeps its stop)."""
    if actor.project is not None:
        raise Forbidden(_ALL_PROJECTS)
    result = []
    with write_transaction(session):
        for name in dict.fromkeys(environments):
            existing = stops.active_for(session, name)
            if existing is not None:
                result.append(existing)
                continue
            row = stops.add(session, environment=name, reason=reason, actor=actor.name)
            audit.append(session, actor, "stop.created", "stop", row.id,
                         after={"environment": name, "reason": reason})
            result.append(row)
    return result


def lift(session: Session, actor: Actor, stop_id: int,
         reason: str | None = None) -> EmergencyStop:
    """Let promotion into the environment resume."""
    if actor.project is not None:
        raise Forbidden(_ALL_PROJECTS)
    with write_transaction(session):
        row = stops.get(session, stop_id)
        if row is None:
            raise NotFound(f"no emergency stop with id {stop_id}")
        if row.lifted_at is None:
            row.lifted_at, row.lifted_by = utcnow(), actor.name
            session.flush()
            audit.append(session, actor, "stop.lifted", "stop", row.id,
                         before={"environment": row.environment},
                         after={"lifted": True} | ({"reason": reason} if reason else {}))
    return row


def active(session: Session) -> list[EmergencyStop]:
    """Stops in force."""
    return stops.active(session)
