"""Holds: automatic promotion into an environment stops until someone lifts the hold."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..db import write_transaction
from ..db.models import Environment, utcnow
from ..domain.actor import Actor
from ..domain.holds import Hold, lift_instructions
from ..store import audit
from . import lookups


def set_hold(session: Session, actor: Actor, env: Environment, reason: str) -> None:
    """Hold the environment (in the caller's write transaction); a held one stays as it is."""
    if env.hold_at is not None:
        return
    env.hold_reason, env.hold_by, env.hold_at = reason, actor.name, utcnow()
    session.flush()
    audit.append(session, actor, "environment.hold_set", "environment", env.id,
                 before={"hold": None}, after={"hold": reason})


def shown(env: Environment) -> dict[str, str] | None:
    """The environment's hold as the API shows it (who, when, why, what lifts it), if any."""
    if env.hold_at is None:
        return None
    return Hold(env.hold_reason or "", env.hold_by or "", env.hold_at).to_dict(
        lift_instructions(env.project_id, env.name))


def put_hold(session: Session, actor: Actor, project_id: int, name: str,
             reason: str) -> Environment:
    """Stop automatic promotion into the environment until someone lifts the hold."""
    with write_transaction(session):
        env = lookups.scoped_environment(session, actor, project_id, name)
        set_hold(session, actor, env, reason)
    return env


def lift_hold(session: Session, actor: Actor, project_id: int, name: str,
              reason: str | None = None) -> Environment:
    """Let automatic promotion into the environment resume (nothing to do without a hold)."""
    with write_transaction(session):
        env = lookups.scoped_environment(session, actor, project_id, name)
        if env.hold_at is not None:
            before = {"hold": env.hold_reason, "by": env.hold_by}
            env.hold_reason = env.hold_by = env.hold_at = None
            session.flush()
            audit.append(session, actor, "environment.hold_lifted", "environment", env.id,
                         before=before, after={"hold": None}
                         | ({"reason": reason} if reason else {}))
    return env
